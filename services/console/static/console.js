// Keyboard shortcuts and a few conveniences; every page works without this file.
(function () {
  "use strict";
  // htmx requests carry the session's CSRF token (forms also carry it as a field).
  document.addEventListener("htmx:configRequest", function (event) {
    var token = document.body.dataset.csrf;
    if (token) { event.detail.headers["X-CSRF-Token"] = token; }
  });
  function rows() { return Array.prototype.slice.call(document.querySelectorAll("table.cases tbody tr")); }
  var current = -1;
  function select(i) {
    var all = rows();
    if (!all.length) { return; }
    current = Math.max(0, Math.min(all.length - 1, i));
    all.forEach(function (row, k) { row.classList.toggle("current", k === current); });
    all[current].scrollIntoView({ block: "nearest" });
  }
  var pendingG = false;
  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    if (target && /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName)) {
      if (event.key === "Escape") { target.blur(); }
      return;
    }
    if (pendingG) {
      pendingG = false;
      var to = { i: "/", d: "/dashboard", r: "/rules", s: "/silences" }[event.key];
      if (to) { window.location.href = to; }
      return;
    }
    if (event.key === "g") { pendingG = true; return; }
    if (event.key === "/") {
      var first = document.querySelector("#filters select, #filters input");
      if (first) { event.preventDefault(); first.focus(); }
    } else if (event.key === "j") { select(current + 1); }
    else if (event.key === "k") { select(current - 1); }
    else if (event.key === "Enter" && current >= 0) {
      var row = rows()[current];
      if (row) { window.location.href = row.dataset.href; }
    } else if (event.key === "c") {
      var comment = document.querySelector("#comment textarea");
      if (comment) { event.preventDefault(); comment.focus(); }
    }
  });
  // A click anywhere on a case's row opens it.
  document.addEventListener("click", function (event) {
    var row = event.target.closest && event.target.closest("table.cases tbody tr");
    if (row && !event.target.closest("a")) { window.location.href = row.dataset.href; }
  });
  document.addEventListener("htmx:afterSwap", function () { current = -1; });
  // A chosen rule file fills the text area it names (the form posts text, not a file).
  document.addEventListener("change", function (event) {
    var input = event.target;
    if (!input.dataset || !input.dataset.fills || !input.files || !input.files[0]) { return; }
    var reader = new FileReader();
    reader.onload = function () { document.getElementById(input.dataset.fills).value = reader.result; };
    reader.readAsText(input.files[0]);
  });
})();
