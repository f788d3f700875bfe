"""The notifier's state in Redis: the name of every key, in one place.

``<ns>`` is ``StreamNames.notify_namespace``: the namespace (``tradewatch``), or, partitioned or on
a Redis Cluster, the namespace with one hash tag (``tradewatch:{notify}``), so that every key below
hashes to one slot and each script touches one slot only. Under ``<ns>:notify:``::

    alert:<alert id>                 the alert as JSON (kept for the history retention)
    accepted:<alert id>:<sub>        this subscription has taken the alert (a repeat is dropped)
    gave-up:<alert id>:<sub>         channels that dead-lettered it: a replay queues it for these
    dedup:<sub>:<dedup key>          the alert id that opened the re-alert window (expires with it)
    open:<sub>:<channel>:<bucket>    the message still collecting alerts for this bucket
    delivery:<id>                    one message for one channel: subscription, channel, state,
                                     attempts, last error, times (state: open, sending, retry, sent,
                                     dead, silenced)
    delivery:<id>:alerts             the alert ids in it, in arrival order
    due:<channel>                    sorted set: delivery id -> when to send it next
    history:<alert id>               what happened to the alert, one JSON event per entry
    recent                           sorted set: alert id -> when it arrived (``alerts list``)
    silences                         hash: silence id -> the silence as JSON
    silenced                         hash: silence id -> how many alerts it held back

and beside them ``<ns>:deliveries``, the stream of every send (``StreamNames.deliveries``, which
``tradewatch status`` reads: the same name).

Python and the scripts (``services/notify/lua/``) build these names from one table,
``LAYOUT``: a template per name, ``%s`` where a part goes, in the order shown above. Python fills
it in with ``%``; each script call gets the templates with the prefix applied
(``NotifyKeys.templates``) and fills them in with Lua's ``string.format``, so no script spells a
key name of its own.
"""

from __future__ import annotations

from typing import Final

LAYOUT: Final[dict[str, str]] = {
    "alert": "alert:%s",  # alert id
    "accepted": "accepted:%s:%s",  # alert id, subscription
    "gave_up": "gave-up:%s:%s",  # alert id, subscription
    "dedup": "dedup:%s:%s",  # subscription, dedup key
    "open": "open:%s:%s:%s",  # subscription, channel, bucket
    "delivery": "delivery:%s",  # delivery id
    "delivery_alerts": "delivery:%s:alerts",  # delivery id
    "due": "due:%s",  # channel
    "history": "history:%s",  # alert id
    "recent": "recent",
    "silences": "silences",
    "silenced": "silenced",
}
"""Key templates under ``<ns>:notify:``: name -> template (``%s``: one part, in order)."""


class NotifyKeys:
    """The key names of the notifier's state under one namespace (``StreamNames.notify_namespace``)."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.prefix = f"{namespace}:notify:"
        self.deliveries = f"{namespace}:deliveries"
        # A ``%`` of the namespace itself is doubled: only the layout's ``%s`` take parts.
        escaped = self.prefix.replace("%", "%%")
        self.templates: dict[str, str] = {name: escaped + t for name, t in LAYOUT.items()}
        """Every template with the prefix applied: what the scripts get (``ARGV[1].keys``)."""
        self.templates["deliveries"] = self.deliveries.replace("%", "%%")

    def _name(self, template: str, *parts: str) -> str:
        return self.templates[template] % parts

    def alert(self, alert_id: str) -> str:
        return self._name("alert", alert_id)

    def accepted(self, alert_id: str, subscription: str) -> str:
        return self._name("accepted", alert_id, subscription)

    def gave_up(self, alert_id: str, subscription: str) -> str:
        return self._name("gave_up", alert_id, subscription)

    def dedup(self, subscription: str, dedup_key: str) -> str:
        return self._name("dedup", subscription, dedup_key)

    def open(self, subscription: str, channel: str, bucket: str) -> str:
        return self._name("open", subscription, channel, bucket)

    def delivery(self, delivery_id: str) -> str:
        return self._name("delivery", delivery_id)

    def delivery_alerts(self, delivery_id: str) -> str:
        return self._name("delivery_alerts", delivery_id)

    def due(self, channel: str) -> str:
        return self._name("due", channel)

    @property
    def due_prefix(self) -> str:
        """What every ``due:<channel>`` starts with (to find the channels with a schedule)."""
        return self.due("")

    def history(self, alert_id: str) -> str:
        return self._name("history", alert_id)

    @property
    def recent(self) -> str:
        return self._name("recent")

    @property
    def silences(self) -> str:
        return self._name("silences")

    @property
    def silenced(self) -> str:
        return self._name("silenced")
