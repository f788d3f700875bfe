"""Hot reload: watch the rule, exception, catalog and rates files; swap in a valid new rule set.

Polling modification times (and sizes) is enough here: the files are small, edits are rare,
and it works the same on every filesystem, network mounts and container volumes included.
A valid change replaces the whole rule set at once and its version is logged and stored at
``<namespace>:ruleset:version`` (its rules at ``<namespace>:ruleset:rules``, see live.py); an
invalid one is logged with every problem and the last good set stays live. A file that changes again while being loaded is simply seen next time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path

import redis.asyncio as aredis

from services.logging import get_logger
from services.rules import live
from services.rules.engine import RuleSet
from services.rules.loader import load_from_settings, watched_files
from services.settings import Settings
from services.yamlfile import ConfigError

Stamp = tuple[int, int] | None
"""(mtime in ns, size) of a file, or None when it is missing."""


def stamp(path: Path) -> Stamp:
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_mtime_ns, info.st_size)


class Reloader:
    def __init__(self, settings: Settings, redis: aredis.Redis, apply: Callable[[RuleSet], None]) -> None:
        self.settings = settings
        self.redis = redis
        self.apply = apply
        self.files = watched_files(settings)
        self.stamps = {path: stamp(path) for path in self.files}
        self.log = get_logger(stage="rules", component="reloader")
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.settings.rules_reload_interval > 0 and self._task is None:
            self._task = asyncio.create_task(self._watch(), name="rules-reloader")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.settings.rules_reload_interval)
            try:
                await self.check()
            except Exception as error:  # the watcher must outlive any one failure
                self.log.error("rule reload check failed", error=f"{type(error).__name__}: {error}")

    async def check(self) -> RuleSet | ConfigError | None:
        """Reload if a file changed: the new set, the errors that kept the old one, or None."""
        now = {path: stamp(path) for path in self.files}
        if now == self.stamps:
            return None
        changed = [str(p) for p in self.files if now[p] != self.stamps[p]]
        # Remember these stamps even when the load fails: a bad file is reported once, not
        # every interval, and the next edit is seen as a change again.
        self.stamps = now
        try:
            ruleset = await asyncio.to_thread(load_from_settings, self.settings)
        except ConfigError as error:
            self.log.error(
                "rule files changed but have errors; the last good rule set stays live",
                changed=changed,
                problems=[str(p) for p in error.problems],
            )
            return error
        self.apply(ruleset)
        await live.publish(self.redis, self.settings.streams, ruleset)
        self.log.info(
            "rule set reloaded",
            ruleset_version=ruleset.version,
            rules=len(ruleset.rules),
            changed=changed,
        )
        return ruleset
