"""Channels: Apprise's own YAML configuration, with tags, secrets from the environment.

``${VAR}`` in the file is replaced by the environment variable VAR and ``${file:/run/secrets/x}``
by that file's content, before Apprise sees it; every value substituted is registered as a
secret, so it is masked in every log line and error. The file is checked at start: Apprise
accepts a missing file or a bad version silently (zero services), tradewatch does not.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import apprise
from apprise import NotifyFormat, NotifyType

from services.notify import localchannels, webhook
from services.notify.render import Message
from services.redact import describe_url, register_secret
from services.yamlfile import ConfigError, Problem, load

_REFERENCE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*|file:[^}]+)\}")


@dataclass(frozen=True)
class Channel:
    """One Apprise service: an id safe to show and store, its tags, its format."""

    id: str
    tags: frozenset[str]
    display: str
    format: str  # text | markdown | html | json
    service: Any

    async def send(self, message: Message) -> bool:
        """Send one rendered message, telling Apprise how its body is written: an HTML body to a
        mail channel goes out as multipart mail (the HTML, and a plain-text part made from it)."""
        return bool(
            await self.service.async_notify(
                title=message.title,
                body=message.body,
                body_format=body_format(message.format),
                notify_type=notify_type(message.severity),
            )
        )


_BODY_FORMATS = {"text": NotifyFormat.TEXT, "markdown": NotifyFormat.MARKDOWN, "html": NotifyFormat.HTML}
"""How each rendered format is announced to Apprise; JSON documents travel as text."""


_NOTIFY_TYPES = {"critical": NotifyType.FAILURE, "high": NotifyType.WARNING}
"""Apprise's message type by severity: chat channels colour a critical case red, a high one amber."""


def notify_type(severity: str) -> NotifyType:
    return _NOTIFY_TYPES.get(severity, NotifyType.INFO)


def body_format(rendered: str) -> NotifyFormat:
    return _BODY_FORMATS.get(rendered, NotifyFormat.TEXT)


def _substitute(text: str, file: str) -> str:
    problems: list[Problem] = []

    def value_of(name: str, line: int) -> str:
        if name.startswith("file:"):
            path = Path(name.removeprefix("file:"))
            try:
                value = path.read_text(encoding="utf-8").strip()
            except OSError as error:
                problems.append(Problem(file, line, f"secret file {path} cannot be read: {error.strerror}"))
                return ""
        else:
            found = os.environ.get(name)
            if found is None:
                problems.append(Problem(file, line, f"${{{name}}} is not set in the environment"))
                return ""
            value = found
        register_secret(value)
        return value

    lines = []
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        # Comment lines are left alone: examples there name variables nobody has to set.
        if not line.lstrip().startswith("#"):
            line = _REFERENCE.sub(lambda m, n=number: value_of(m.group("name"), n), line)  # type: ignore[misc]
        lines.append(line)
    if problems:
        raise ConfigError(problems)
    return "".join(lines)


def _channel_id(service: Any, index: int) -> str:
    url = service.url(privacy=False)
    tags = sorted(service.tags) or ["untagged"]
    return f"{tags[0]}-{hashlib.sha256(url.encode()).hexdigest()[:8]}"


_MACHINE_READABLE = frozenset({"json", "jsons", "twjsonl"})


def _format(service: Any) -> str:
    """How to render for this channel: JSON for webhooks and files unless ?format= says otherwise."""
    protocols = {getattr(service, "protocol", None), getattr(service, "secure_protocol", None)}
    protocols = {p for group in protocols if group for p in ([group] if isinstance(group, str) else group)}
    if protocols & _MACHINE_READABLE and not getattr(service, "_format_override", None):
        return "json"
    chosen = getattr(service, "_format_override", None) or getattr(service, "notify_format", "text")
    if isinstance(chosen, tuple | list):  # the formats a plugin takes, its preferred first (mail: HTML)
        chosen = chosen[0] if chosen else "text"
    fmt = str(getattr(chosen, "value", chosen))
    return fmt if fmt in ("text", "markdown", "html") else "text"


def load_channels(path: Path) -> list[Channel]:
    assert localchannels.LOCAL_SCHEMES  # the local plugins are registered on import
    assert webhook.REGISTERED  # and the JSON webhooks' payload with the cases as objects
    doc = load(path)  # checks existence, size, encoding, YAML syntax with lines
    if not isinstance(doc.data, dict):
        raise ConfigError(
            [Problem(doc.file, 1, "expected Apprise YAML configuration (version: 1, urls: [...])")]
        )
    text = _substitute(path.read_text(encoding="utf-8"), doc.file)
    config = apprise.AppriseConfig()
    config.add_config(text, format="yaml")
    bundle = apprise.Apprise()
    bundle.add(config)
    services: list[Any] = list(bundle)
    if not services:
        raise ConfigError(
            [
                Problem(
                    doc.file,
                    None,
                    "loads no channel: check the version: 1 line and every URL under urls",
                )
            ]
        )
    declared = len(doc.data.get("urls") or [])
    if declared and len(services) < declared:
        raise ConfigError(
            [
                Problem(
                    doc.file,
                    doc.line_of(("urls",)),
                    f"{declared} URLs declared but Apprise loaded {len(services)}: a URL has an unknown scheme or is malformed",
                )
            ]
        )
    channels = []
    for index, service in enumerate(services):
        channels.append(Channel(
            id=_channel_id(service, index),
            tags=frozenset(str(t) for t in service.tags),
            display=describe_url(service.url(privacy=True)),
            format=_format(service),
            service=service,
        ))  # fmt: skip
    return channels
