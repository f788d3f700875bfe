"""What a channel receives for a message, shown without sending it (``notify preview``).

Built with the channel's own Apprise code where it has a public way to build its request: a mail
channel's MIME message (``prepare_emails``: subject, the plain-text part and the HTML part), a
JSON webhook's payload. Other channels show the title and the body converted to the format the
channel declares, as Apprise converts it before sending.
"""

from __future__ import annotations

import email
import email.policy
import json
from typing import Any

from apprise.conversion import convert_between
from apprise.plugins.email.base import NotifyEmail

from services.notify.channels import Channel, body_format, notify_type
from services.notify.render import Message
from services.notify.webhook import CaseJSON, payload


def delivery(channel: Channel, message: Message) -> str:
    service = channel.service
    fmt = body_format(message.format)
    if isinstance(service, NotifyEmail):
        return _mail(service, message, fmt)
    if isinstance(service, CaseJSON):
        kind = notify_type(message.severity).value
        return json.dumps(payload(service, message.title, message.body, kind), ensure_ascii=False, indent=2)
    target = service.resolve_format(fmt)
    body = convert_between(fmt, target, message.body) if target != fmt else message.body  # type: ignore[no-untyped-call]
    return f"title: {message.title}\nformat: {target.value}\n\n{body}"


def _mail(service: Any, message: Message, fmt: Any) -> str:
    prepared = next(
        iter(
            NotifyEmail.prepare_emails(
                subject=message.title,
                body=message.body,
                notify_format=service.resolve_format(fmt),
                from_addr=service.from_addr,
                to=service.targets,
                smtp_host=service.smtp_host,
                headers={"X-Application": service.app_id, **service.headers},
            )
        )
    )
    mail = email.message_from_string(prepared.body, policy=email.policy.default)
    lines = [f"{name}: {value}" for name, value in mail.items() if name in ("Subject", "From", "To")]
    for part in mail.walk():
        if part.is_multipart():
            lines.append(f"--- {part.get_content_type()}")
            continue
        lines += [f"--- {part.get_content_type()}", part.get_content().rstrip()]
    return "\n".join(lines)
