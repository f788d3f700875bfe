"""Serving the console: on its own (``tradewatch console``) or beside the stages (``tradewatch up``).

The socket is bound before the server starts, so a port already taken is said at once and port 0
gets a free one whose address is printed. Client addresses are the peer's own (no forwarded
headers are believed): the single sign-on header is honoured by the proxy's address alone.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import dataclass, field

import uvicorn

from services.console.app import build_console, create_app
from services.server import Endpoint, client
from services.settings import Settings
from services.store import Store


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; OSError says when the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def _server(settings: Settings, endpoint: Endpoint) -> uvicorn.Server:
    store = Store.from_settings(settings)
    console = build_console(settings, store, client(endpoint))
    config = uvicorn.Config(
        create_app(console, owns=True),
        log_config=None,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        lifespan="on",
    )
    return uvicorn.Server(config)


async def serve(settings: Settings, endpoint: Endpoint, sock: socket.socket) -> None:
    """Serve until the process is told to stop (SIGINT, SIGTERM)."""
    await _server(settings, endpoint).serve(sockets=[sock])


@dataclass
class Background:
    """The console in a thread of its own, beside the stages of ``tradewatch up``."""

    url: str
    thread: threading.Thread
    holder: list[uvicorn.Server] = field(default_factory=list)

    def stop(self, timeout: float = 5.0) -> None:
        for server in self.holder:
            server.should_exit = True
        self.thread.join(timeout)


def in_background(settings: Settings, endpoint: Endpoint) -> Background:
    sock = bind(settings.console_host, settings.console_port)
    holder: list[uvicorn.Server] = []

    def run() -> None:
        server = _server(settings, endpoint)
        holder.append(server)
        asyncio.run(server.serve(sockets=[sock]))

    thread = threading.Thread(target=run, name="console", daemon=True)
    thread.start()
    return Background(url_of(sock), thread, holder)
