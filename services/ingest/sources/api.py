"""``POST /reports``: partner systems post one report or a batch (starlette, served by uvicorn).

- Authentication: ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``, checked against
  ``TRADEWATCH_API_KEYS`` in constant time (every key compared, ``hmac.compare_digest``). With no
  key configured every post is refused: there is no open mode.
- Size: ``Content-Length`` over ``TRADEWATCH_HTTP_MAX_BODY_BYTES`` is refused before reading; a
  body that grows past it while streaming is cut off and refused the same way (413).
- A batch is all or nothing: one invalid report refuses the request (422) with every problem's
  field path (``1.items.0.hs_code``) and message; nothing of it is published. Resending after a
  fix is safe, report ids make it so.
- Every refused request except 401 goes to ``<ns>:reports:rejected`` with its request id (the
  caller's ``X-Request-ID`` or a new one), the raw body and the reason. Unauthenticated requests
  are not recorded, so that no stranger can fill the stream; they are logged (``API key
  refused``) with the key's fingerprint (the first 8 hex digits of its SHA-256), never the key,
  at most one line per fingerprint a minute, with the number of refusals not logged since.
- ``GET /openapi.json`` (the document, with the ImportReport schema), ``GET /health``
  (the process answers), ``GET /ready`` (the server answers a PING).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pydantic import SecretStr, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from schemas.report import ImportReport
from services.ingest.publisher import Publisher, content_id
from services.logging import get_logger

MAX_BATCH = 1_000
SOURCE = "http"
_REQUEST_ID = re.compile(r"^[\w.\-:]{1,100}$")
REFUSAL_LOG_INTERVAL = 60.0
"""Seconds between two log lines about refused requests with the same key."""
REFUSAL_LOG_KEYS = 100
"""Keys whose refusals are counted apart within one interval; past it, one count for the rest."""


class Refused(Exception):
    def __init__(self, status: int, reason: str, problems: list[dict[str, str]] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.problems = problems or [{"path": "", "message": reason}]


def key_matches(given: str, keys: Sequence[SecretStr]) -> bool:
    """Constant time in the key's content: every configured key is compared, none skipped."""
    found = False
    candidate = given.encode()
    for key in keys:
        found |= hmac.compare_digest(candidate, key.get_secret_value().encode())
    return found


def key_fingerprint(given: str) -> str:
    """Names a key in logs without revealing it: the first 8 hex digits of its SHA-256."""
    return hashlib.sha256(given.encode()).hexdigest()[:8] if given else "none"


class RefusalLog:
    """Logs refused API keys, at most one line per key fingerprint per ``interval`` seconds.

    The refusals in between are counted and the next line for that key says how many
    (``suppressed``). A caller trying many keys cannot flood the log either: past ``max_keys``
    fingerprints within an interval the others share one count, under the fingerprint ``*``.
    """

    def __init__(
        self,
        log: Any,
        interval: float = REFUSAL_LOG_INTERVAL,
        max_keys: int = REFUSAL_LOG_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log = log
        self.interval = interval
        self.max_keys = max_keys
        self.clock = clock
        self._last: dict[str, tuple[float, int]] = {}  # fingerprint -> (last line, suppressed since)

    def refused(self, fingerprint: str, **fields: Any) -> None:
        now = self.clock()
        if fingerprint not in self._last and len(self._last) >= self.max_keys:
            # Forget the keys whose interval is over (their suppressed count dies with them).
            self._last = {k: v for k, v in self._last.items() if now - v[0] < self.interval}
            if len(self._last) >= self.max_keys:
                fingerprint = "*"
        last, suppressed = self._last.get(fingerprint, (None, 0))
        if last is not None and now - last < self.interval:
            self._last[fingerprint] = (last, suppressed + 1)
            return
        self._last[fingerprint] = (now, 0)
        self.log.warning("API key refused", key_fingerprint=fingerprint, suppressed=suppressed, **fields)


def problems_of(error: ValidationError, prefix: str = "") -> list[dict[str, str]]:
    out = []
    for problem in error.errors():
        path = ".".join(str(p) for p in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        out.append({"path": f"{prefix}{path}" if path else prefix.rstrip("."), "message": message})
    return out


def parse_reports(body: bytes) -> list[ImportReport]:
    """One report (an object) or a batch (an array, or ``{"reports": [...]}``); Refused if not."""
    try:
        document = json.loads(body)
    except UnicodeDecodeError as error:
        raise Refused(400, f"body is not UTF-8 (byte {error.start})") from None
    except ValueError as error:
        raise Refused(400, f"body is not JSON: {error}") from None
    batch = isinstance(document, list) or (isinstance(document, dict) and set(document) == {"reports"})
    documents = document if isinstance(document, list) else document.get("reports") if batch else [document]
    if not isinstance(documents, list) or not all(isinstance(d, dict) for d in documents):
        raise Refused(422, "expected a report (JSON object) or a batch (JSON array of objects)")
    if not documents:
        raise Refused(422, "the batch is empty")
    if len(documents) > MAX_BATCH:
        raise Refused(413, f"{len(documents)} reports in one batch, over the limit of {MAX_BATCH}")
    reports, problems = [], []
    for index, doc in enumerate(documents):
        doc.setdefault("source", SOURCE)
        if not doc.get("report_id"):
            doc["report_id"] = content_id(str(doc["source"]), doc)
        try:
            reports.append(ImportReport.model_validate(doc))
        except ValidationError as error:
            problems += problems_of(error, f"{index}." if batch else "")
    if problems:
        raise Refused(422, "; ".join(f"{p['path']}: {p['message']}" for p in problems[:20]), problems)
    return reports


def openapi() -> dict[str, Any]:
    schema = ImportReport.model_json_schema(ref_template="#/components/schemas/{model}")
    components = schema.pop("$defs", {})
    components["ImportReport"] = schema
    problem = {
        "type": "object",
        "properties": {
            "request_id": {"type": "string"},
            "error": {"type": "string"},
            "problems": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"path": {"type": "string"}, "message": {"type": "string"}},
                },
            },
        },
    }
    components["Problem"] = problem
    report_ref = {"$ref": "#/components/schemas/ImportReport"}
    failure = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "tradewatch ingest", "version": "1"},
        "paths": {
            "/reports": {
                "post": {
                    "summary": "Publish one report or a batch, each exactly once",
                    "security": [{"bearer": []}, {"apiKey": []}],
                    "parameters": [
                        {
                            "name": "X-Request-ID",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string"},
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"oneOf": [report_ref, {"type": "array", "items": report_ref}]}
                            }
                        },
                    },
                    "responses": {
                        "202": {
                            "description": "accepted: the report ids (published now or seen before)",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "request_id": {"type": "string"},
                                            "report_ids": {"type": "array", "items": {"type": "string"}},
                                            "published": {"type": "integer"},
                                            "duplicates": {"type": "integer"},
                                        },
                                    }
                                }
                            },
                        },
                        "400": {"description": "not JSON", **failure},
                        "401": {"description": "no valid API key", **failure},
                        "413": {"description": "body or batch too large", **failure},
                        "415": {"description": "not application/json", **failure},
                        "422": {
                            "description": "invalid reports: every problem's path and message",
                            **failure,
                        },
                    },
                }
            },
            "/health": {
                "get": {"summary": "the process answers", "responses": {"200": {"description": "ok"}}}
            },
            "/ready": {
                "get": {
                    "summary": "the Redis server answers",
                    "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}},
                }
            },
        },
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }


def make_app(
    publisher: Publisher,
    keys: Sequence[SecretStr],
    max_body_bytes: int,
    ready: Callable[[], Awaitable[bool]],
) -> Starlette:
    log = get_logger(stage="ingest", component="http")
    refusals = RefusalLog(log, REFUSAL_LOG_INTERVAL)
    document = openapi()

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
            raise Refused(413, f"body of {declared} bytes, over the limit of {max_body_bytes}")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body_bytes:
                raise Refused(413, f"body over the limit of {max_body_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def given_key(request: Request) -> str:
        given = request.headers.get("x-api-key") or ""
        auth = request.headers.get("authorization") or ""
        if auth[:7].lower() == "bearer ":
            given = auth[7:].strip()
        return given

    async def post_reports(request: Request) -> Response:
        given_id = request.headers.get("x-request-id", "")
        request_id = given_id if _REQUEST_ID.match(given_id) else f"req-{uuid.uuid4().hex}"
        given = given_key(request)
        if not (keys and given and key_matches(given, keys)):
            reason = (
                "no API key is configured (TRADEWATCH_API_KEYS)"
                if not keys
                else "a valid API key is required"
            )
            why = "no key is configured" if not keys else "unknown key" if given else "no key given"
            refusals.refused(
                key_fingerprint(given),
                reason=why,
                client=request.client.host if request.client else None,
                request_id=request_id,
            )
            return JSONResponse(
                {"request_id": request_id, "error": reason, "problems": [{"path": "", "message": reason}]},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer", "X-Request-ID": request_id},
            )
        body = b""
        try:
            content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type != "application/json":
                raise Refused(415, f"content type must be application/json, not {content_type or 'none'!r}")
            body = await read_body(request)
            reports = parse_reports(body)
        except Refused as refused:
            await publisher.reject(SOURCE, f"request {request_id}", body, refused.reason)
            log.warning(
                "request refused", request_id=request_id, status=refused.status, reason=refused.reason
            )
            return JSONResponse(
                {"request_id": request_id, "error": refused.reason, "problems": refused.problems},
                status_code=refused.status,
                headers={"X-Request-ID": request_id},
            )
        fresh = await publisher.publish(reports)
        published = sum(fresh)
        log.info(
            "reports posted",
            request_id=request_id,
            report_ids=[r.report_id for r in reports][:50],
            published=published,
            duplicates=len(fresh) - published,
        )
        return JSONResponse(
            {
                "request_id": request_id,
                "report_ids": [r.report_id for r in reports],
                "published": published,
                "duplicates": len(fresh) - published,
            },
            status_code=202,
            headers={"X-Request-ID": request_id},
        )

    async def get_openapi(request: Request) -> Response:
        return JSONResponse(document)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readiness(request: Request) -> Response:
        try:
            ok = await ready()
        except Exception as error:
            return JSONResponse({"status": "not ready", "error": type(error).__name__}, status_code=503)
        return JSONResponse({"status": "ready" if ok else "not ready"}, status_code=200 if ok else 503)

    return Starlette(
        routes=[
            Route("/reports", post_reports, methods=["POST"]),
            Route("/openapi.json", get_openapi, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/ready", readiness, methods=["GET"]),
        ]
    )
