"""JSON webhooks that a program parses once.

Apprise's ``json://`` and ``jsons://`` post ``{"version", "title", "message", "type", ...}`` with
the message as a string. tradewatch renders a case for programs as a JSON document (the text for
people, the cases and the alerts as objects); sent as Apprise's message, it would arrive as JSON
encoded in a string, to be parsed twice. ``CaseJSON`` is Apprise's JSON plugin with one change:
when the body is such a document, its objects become keys of the payload itself::

    {"version": "1.0", "title": "...", "message": "<the case as text>", "type": "warning",
     "cases": [{...}], "alerts": [{...}]}

Everything else (method, headers, auth, ``:key=value`` payload remapping, TLS, retries) is
Apprise's own. It is registered for ``json://`` and ``jsons://`` when this module is imported.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from apprise.manager_plugins import NotificationManager
from apprise.plugins.custom_json import NotifyJSON

DOCUMENT_KEYS = ("cases", "alerts")
"""The keys a rendered case document adds to the payload."""


class CaseJSON(NotifyJSON):  # type: ignore[no-untyped-call]
    service_name = "JSON (tradewatch cases)"

    def send(self, body: str, title: str = "", *args: Any, **kwargs: Any) -> bool:
        document = case_document(body)
        if document is None:  # not a case document: sent as Apprise would
            return bool(super().send(body, title, *args, **kwargs))  # type: ignore[no-untyped-call]
        # A copy per send carries this payload's objects: sends to one channel may overlap.
        sender = copy.copy(self)
        sender.payload_extras = _extras(self, document)
        sent = NotifyJSON.send(sender, str(document["message"]), title, *args, **kwargs)  # type: ignore[no-untyped-call]
        return bool(sent)


def _extras(service: Any, document: dict[str, Any]) -> dict[str, Any]:
    """The document's objects as payload keys, before the channel's own ``:key=value`` entries."""
    return {**{key: document[key] for key in DOCUMENT_KEYS if key in document}, **service.payload_extras}


def payload(service: Any, title: str, body: str, notify_type: str = "info") -> dict[str, Any]:
    """The payload ``service`` posts for this title and body (for ``notify preview``): Apprise's
    fields, the document's objects, then the channel's remapping of keys (``:message=text``)."""
    document = case_document(body)
    out: dict[str, Any] = {
        "version": service.json_version,
        "title": title,
        "message": str(document["message"]) if document else body,
        "attachments": [],
        "type": notify_type,
    }
    extras = _extras(service, document) if document else dict(service.payload_extras)
    for key, value in extras.items():  # as NotifyJSON.send applies them
        if key in out and not value:
            del out[key]
        elif key in out:
            out[value] = out.pop(key)
        else:
            out[key] = value
    return out


def case_document(body: str) -> dict[str, Any] | None:
    """The rendered case document in a body, or None for any other body."""
    if not body.startswith("{"):
        return None
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    if isinstance(parsed, dict) and "message" in parsed and any(k in parsed for k in DOCUMENT_KEYS):
        return parsed
    return None


REGISTERED = NotificationManager().add(CaseJSON, schemas=["json", "jsons"], force=True)  # type: ignore[no-untyped-call]
