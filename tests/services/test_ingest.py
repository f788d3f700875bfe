"""Ingest against a real server: each report once, bad lines rejected with where and why, the inbox."""

from __future__ import annotations

import json
from pathlib import Path

import redis

from services.ingest.files import ingest_file
from services.ingest.publisher import Publisher
from services.ingest.registry import Sources
from services.ingest.stage import IngestStage
from services.runtime import Context
from services.settings import Settings
from tests.fixtures.news_facts import NEWS_REPORT
from tests.pipeline import run_burst


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def test_same_file_twice_publishes_once(ctx: Context, raw_redis: redis.Redis, tmp_path: Path) -> None:
    names = ctx.settings.streams
    file = write_jsonl(tmp_path / "r.jsonl", [
        json.dumps(NEWS_REPORT),
        json.dumps({"source": "desk", "text": "excavators seen at Sinuiju"}),  # no id: content hash
    ])  # fmt: skip
    publisher = Publisher(ctx.redis, names, ctx.settings.dedup_retention)

    first = await ingest_file(file, Sources.from_settings(ctx.settings).get("jsonl"), publisher)
    again = await ingest_file(file, Sources.from_settings(ctx.settings).get("jsonl"), publisher)

    assert first.as_dict() == {"read": 2, "published": 2, "duplicates": 0, "rejected": 0}
    assert again.as_dict() == {"read": 2, "published": 0, "duplicates": 2, "rejected": 0}
    assert raw_redis.xlen(names.reports) == 2
    ids = [json.loads(f[b"report"])["report_id"] for _, f in raw_redis.xrange(names.reports)]
    assert ids[0] == NEWS_REPORT["report_id"]
    assert ids[1].startswith("desk-")


async def test_bad_lines_are_rejected_with_place_and_reason(
    ctx: Context, raw_redis: redis.Redis, tmp_path: Path
) -> None:
    names = ctx.settings.streams
    file = tmp_path / "mixed.jsonl"
    file.write_bytes(
        b'{"report_id": "ok-1", "source": "s", "text": "lathes"}\n'
        b"not json at all\n"
        b'{"report_id": "bad", "source": "s", "items": [{"hs_code": "12x"}]}\n'
        b'{"report_id": "enc", "source": "s", "text": "\xff"}\n'
        b"[1, 2]\n"
        b'{"report_id": "ok-2", "source": "s", "text": "tractors"}\n'
    )
    tally = await ingest_file(
        file, Sources.from_settings(ctx.settings).get("jsonl"), Publisher(ctx.redis, names, 60)
    )

    assert tally.as_dict() == {"read": 6, "published": 2, "duplicates": 0, "rejected": 4}
    rejected = raw_redis.xrange(names.reports_rejected)
    where = [f[b"where"].decode() for _, f in rejected]
    reasons = [f[b"reason"].decode() for _, f in rejected]
    assert where == ["mixed.jsonl:2", "mixed.jsonl:3", "mixed.jsonl:4", "mixed.jsonl:5"]
    assert "not JSON" in reasons[0]
    assert "items.0.hs_code" in reasons[1]
    assert "not UTF-8" in reasons[2]
    assert "expected a JSON object" in reasons[3]
    assert rejected[0][1][b"raw"] == b"not json at all"


async def test_inbox_files_move_to_done_or_failed(settings: Settings, raw_redis: redis.Redis) -> None:
    inbox = settings.inbox
    inbox.mkdir(parents=True)
    write_jsonl(inbox / "good.jsonl", [json.dumps(NEWS_REPORT)])
    (inbox / "binary.jsonl").write_bytes(b"\x00\x01\x02")
    (inbox / "notes.docx").write_bytes(b"whatever")

    await run_burst(settings, lambda ctx: [IngestStage(ctx)])

    assert raw_redis.xlen(settings.streams.reports) == 1
    done = sorted(p.name for p in (inbox / "done").iterdir())
    failed = sorted(p.name for p in (inbox / "failed").iterdir())
    assert len(done) == 1
    assert done[0].endswith("good.jsonl")
    assert {n.split("-", 1)[1] for n in failed} == {
        "binary.jsonl",
        "binary.jsonl.reason",
        "notes.docx",
        "notes.docx.reason",
    }
    reason = next((inbox / "failed").glob("*binary.jsonl.reason")).read_text()
    assert "binary content" in reason
