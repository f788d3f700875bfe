"""The unit tier: pure tests that need no server (``make test-fast`` runs this folder alone).

A unit test that asks for a server, or opens a network connection, fails here with a pointer to
tests/services, so the tier stays runnable without Redis.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from services.sanctions.index import ScreeningIndex
from services.sanctions.lists import read_list
from tests.helpers import SAMPLE_XML

NO_SERVER = "the unit tier runs without a server: a test that needs one belongs in tests/services"


@pytest.fixture(scope="session")
def redis_url() -> str:
    pytest.fail(NO_SERVER)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex

    def refuse(sock: socket.socket, address: object) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            raise AssertionError(f"{NO_SERVER} (it connected to {address})")

    def guarded_connect(sock: socket.socket, address: object) -> None:
        refuse(sock, address)
        connect(sock, address)  # type: ignore[arg-type]

    def guarded_connect_ex(sock: socket.socket, address: object) -> int:
        refuse(sock, address)
        return connect_ex(sock, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)


@pytest.fixture(scope="session")
def sample_index() -> ScreeningIndex:
    """The screening index of the UN sample list (tests/fixtures/sanctions)."""
    return ScreeningIndex.build(read_list(SAMPLE_XML, "un-sc").entries)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ``TRADEWATCH_*`` from the caller's shell, and a working directory without a stray
    .env or tradewatch.yaml."""
    for key in list(os.environ):
        if key.startswith("TRADEWATCH_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
