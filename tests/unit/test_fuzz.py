"""Property-based: malformed messages and files never crash a decoder or a loader.

Every bad message becomes a BadMessage (dead-lettered with its reason) or a Rejection (ingest);
every bad file becomes a ConfigError with a message. Also: no regex built from user input that
is not escaped, and templates that cannot reach outside Jinja's sandbox.
"""

from __future__ import annotations

import ast
import json
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jinja2.exceptions import SecurityError

from schemas.alert import Alert
from schemas.report import ImportReport
from services.goods.catalog import Catalog, load_catalog
from services.ingest.sources import Rejection
from services.ingest.sources.jsonl import JsonlSource
from services.money import load_rates
from services.notify.channels import load_channels
from services.notify.render import Renderer, TemplateProblem
from services.notify.subscriptions import load_subscriptions
from services.rules import loader
from services.rules.engine import RuleSet, evaluate
from services.rules.loader import load_ruleset
from services.textmatch import TermMatcher, normalise
from services.wire import BadMessage, Entry, decode_alert, decode_report
from services.yamlfile import ConfigError
from tests.fixtures.news_facts import NEWS_REPORT
from tests.helpers import CATALOG_FILE, RATES_FILE, ROOT, RULES_FILE, examples

FUZZ = settings(max_examples=examples(100), deadline=None, suppress_health_check=[HealthCheck.too_slow])

odd_text = st.text(
    alphabet=st.characters(codec="utf-8", categories=["L", "M", "N", "P", "S", "Z", "C"]),
    max_size=200,
) | st.sampled_from(["\u202e", "\ufeff", "\x00", "🚜" * 50, "ﬀ" * 30, "a\u0301" * 40, "𝟘𝟙"])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | odd_text,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(odd_text, children, max_size=5),
    max_leaves=30,
)
report_keys = st.sampled_from([*NEWS_REPORT.keys(), "extra", ""])
# Reports that are nearly right: real keys, wrong values; items of wrong shapes.
near_reports = st.dictionaries(report_keys, json_values, max_size=8).map(
    lambda d: {"report_id": "fuzz", "source": "fuzz"} | d
)
deep = st.integers(min_value=50, max_value=100_000).map(lambda n: "[" * n + "]" * n)
huge = st.integers(min_value=1, max_value=3).map(lambda n: json.dumps({"report_id": "x" * (400_000 * n)}))
raw_payloads = (
    st.binary(max_size=300)
    | json_values.map(lambda v: json.dumps(v).encode())
    | near_reports.map(lambda v: json.dumps(v, ensure_ascii=False).encode())
    | deep.map(str.encode)
    | huge.map(str.encode)
    | st.just(b"\xff\xfe{" + b"\x80" * 20)
)


def _outcome(decode: Callable[[Entry], object], entry: Entry) -> tuple[object, str]:
    """(the model, "") or (None, the reason): anything else raised is a crash and fails the test."""
    try:
        return decode(entry), ""
    except BadMessage as error:
        return None, str(error)


def _entry(payload: bytes, field: bytes) -> Entry:
    return Entry("1-0", {field: payload})


@FUZZ
@given(raw_payloads)
def test_report_decoder_never_crashes(payload: bytes) -> None:
    report, reason = _outcome(decode_report, _entry(payload, b"report"))
    assert isinstance(report, ImportReport) or reason


@FUZZ
@given(raw_payloads)
def test_alert_decoder_never_crashes(payload: bytes) -> None:
    alert, reason = _outcome(decode_alert, _entry(payload, b"alert"))
    assert isinstance(alert, Alert) or reason


@FUZZ
@given(st.dictionaries(st.binary(max_size=20), st.binary(max_size=50), max_size=4))
def test_entries_with_odd_fields_are_bad_messages(fields: dict[bytes, bytes]) -> None:
    fields.pop(b"report", None)
    with pytest.raises(BadMessage, match="no field"):
        decode_report(Entry("1-0", fields))


@FUZZ
@given(raw_payloads)
def test_ingest_line_parser_never_crashes(payload: bytes) -> None:
    for parsed in JsonlSource().parse_line(payload, "fuzz:1"):
        if isinstance(parsed, Rejection):
            assert parsed.reason
        else:
            assert isinstance(parsed, ImportReport)


# --- configuration files --------------------------------------------------------------------

REAL = {
    "rules": RULES_FILE.read_text(encoding="utf-8"),
    "catalog": CATALOG_FILE.read_text(encoding="utf-8"),
    "rates": RATES_FILE.read_text(encoding="utf-8"),
    "subscriptions": (ROOT / "config/subscriptions.yaml").read_text(encoding="utf-8"),
    "channels": "version: 1\nurls:\n  - json://127.0.0.1:9/hook:\n      - tag: hook\n",
}


def _load(kind: str, path: Path) -> object:
    if kind == "rules":
        return load_ruleset([path], CATALOG_FILE, RATES_FILE)
    if kind == "catalog":
        return load_catalog(path)
    if kind == "rates":
        return load_rates(path)
    if kind == "subscriptions":
        return load_subscriptions(path, ["hook", "ops", "email", "console", "file"])
    return load_channels(path)


@st.composite
def mutated(draw: st.DrawFn, kind: str) -> bytes:
    """The real file with lines dropped, swapped, re-indented or garbled, or something else entirely."""
    lines = REAL[kind].splitlines(keepends=True)
    how = draw(st.sampled_from(["drop", "garble", "indent", "replace", "bytes", "yaml", "deep"]))
    if how == "bytes":
        return draw(st.binary(max_size=400))
    if how == "yaml":
        return json.dumps(draw(json_values)).encode()  # JSON is YAML: odd shapes, odd types
    if how == "deep":
        n = draw(st.integers(min_value=100, max_value=50_000))
        return ("a: " + "[" * n + "]" * n + "\n").encode()
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        if not lines:
            break
        i = draw(st.integers(min_value=0, max_value=len(lines) - 1))
        if how == "drop":
            del lines[i]
        elif how == "indent":
            lines[i] = " " * draw(st.integers(min_value=1, max_value=5)) + lines[i]
        elif how == "replace":
            lines[i] = draw(odd_text) + "\n"
        else:
            text = lines[i]
            j = draw(st.integers(min_value=0, max_value=max(0, len(text) - 1)))
            lines[i] = (
                text[:j]
                + draw(
                    st.sampled_from(
                        [":", "-", "[", "{", "'", "&a", "*a", "!!python/object:os.system", "\t", "~"]
                    )
                )
                + text[j + 1 :]
            )
    return "".join(lines).encode("utf-8", "surrogatepass")


@pytest.mark.parametrize("kind", list(REAL))
def test_loaders_refuse_bad_files_with_a_config_error(
    kind: str, catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The rule loader reads the shipped catalog again for every mutated rule file (a third of a
    # second an example): that file is not mutated here, so it is the one read for the session.
    # The catalog's own mutations are the "catalog" case, read from scratch every time.
    def shipped_once(path: Path) -> Catalog:
        return catalog if path == CATALOG_FILE else load_catalog(path)

    monkeypatch.setattr(loader, "load_catalog", shipped_once)

    @settings(max_examples=examples(50), deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(mutated(kind))
    def check(content: bytes) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{kind}.yaml"
            path.write_bytes(content)
            problems = None
            try:
                _load(kind, path)
            except ConfigError as error:
                problems = error.problems
            assert problems is None or (problems and all(p.message.strip() for p in problems))

    check()


# --- patterns and templates -----------------------------------------------------------------

_RE_CALLS = {"compile", "search", "match", "fullmatch", "sub", "subn", "split", "findall", "finditer"}


_CONSTANT_NAME = re.compile(r"^_?[A-Z][A-Z0-9_]*$")


def _is_constant(node: ast.expr) -> bool:
    """A literal, or a module constant (``_NUM``): patterns the project wrote, not input."""
    return isinstance(node, ast.Constant) or (
        isinstance(node, ast.Name) and _CONSTANT_NAME.match(node.id) is not None
    )


def _safe_pattern(node: ast.expr) -> bool:
    """A literal or constant, or built only from those and re.escape(...) of anything else."""
    if _is_constant(node):
        return True
    if isinstance(node, ast.JoinedStr):
        return all(
            isinstance(v, ast.Constant)
            or (
                isinstance(v, ast.FormattedValue)
                and (_is_constant(v.value) or "re.escape(" in ast.unparse(v))
            )
            for v in node.values
        )
    return "re.escape(" in ast.unparse(node)


def test_every_regex_built_from_input_escapes_it() -> None:
    unsafe = []
    for path in [*(ROOT / "services").rglob("*.py"), *(ROOT / "schemas").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "re"
                and node.func.attr in _RE_CALLS
                and node.args
                and not _safe_pattern(node.args[0])
            ):
                unsafe.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)[:80]}")
    assert not unsafe, "patterns from input must go through re.escape (or Aho-Corasick):\n" + "\n".join(
        unsafe
    )


@FUZZ
@given(st.lists(odd_text.filter(lambda t: normalise(t).strip()), min_size=1, max_size=20), odd_text)
def test_term_matcher_finds_exactly_what_is_there(terms: list[str], noise: str) -> None:
    matcher = TermMatcher((t, i) for i, t in enumerate(terms))
    text = normalise(f"{noise} {terms[0]} {noise}")
    hits = matcher.find_all(text)
    for hit in hits:
        assert text[hit.start : hit.end] == hit.term  # every hit is really in the text


def test_term_matcher_takes_the_regex_killers_in_its_stride() -> None:
    # Inputs that make a backtracking regex run for ages: Aho-Corasick reads the text once.
    terms = [("a" * n + "b", n) for n in range(1, 60)] + [("(a+)+$", -1), (".*.*.*=.*", -2)]
    matcher = TermMatcher(terms)
    text = "a" * 200_000 + "!"
    assert matcher.find(text) == []
    assert [h.value for h in matcher.find(normalise("(a+)+$ x"))] == [-1]  # a term is text, not a pattern


def _renderer_with(tmp: Path, body: str) -> Renderer:
    for name in ("title", "text", "markdown", "html"):
        (tmp / f"{name}.j2").write_text("{{ severity }}" if name == "title" else body, encoding="utf-8")
    return Renderer(tmp)


def _alert(pack: RuleSet) -> Alert:
    """A real alert (the engine's, for the news report) whose title looks like a template."""
    from datetime import UTC, datetime

    alert = evaluate(ImportReport.model_validate(NEWS_REPORT), pack, datetime.now(UTC))[0]
    return alert.model_copy(update={"title": "{{ 7 * 7 }} {% for x in range(3) %}x{% endfor %}"})


@pytest.mark.parametrize(
    "escape",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ alerts.__class__.__init__.__globals__ }}",
        "{{ severity.__class__.__base__.__subclasses__() }}",
        "{% set x = alerts.append(1) %}{{ x }}",
        "{{ cycler.__init__.__globals__.os }}",
    ],
)
def test_templates_cannot_reach_outside_the_sandbox(tmp_path: Path, escape: str) -> None:
    # Templates are trial-rendered at load: an escape attempt is refused before any alert is sent.
    with pytest.raises(TemplateProblem, match="unsafe") as caught:
        _renderer_with(tmp_path, escape)
    assert isinstance(caught.value.__cause__, SecurityError)


def test_alert_text_is_data_not_template(tmp_path: Path, pack: RuleSet) -> None:
    renderer = _renderer_with(tmp_path, "{% for a in alerts %}{{ a.title }}{% endfor %}")
    body = renderer.render([_alert(pack)], "text").body
    assert body == "{{ 7 * 7 }} {% for x in range(3) %}x{% endfor %}"
