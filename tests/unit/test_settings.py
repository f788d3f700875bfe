"""One settings object: environment, .env, YAML file, secret files; durations as people write them."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from schemas.durations import parse_duration
from services.settings import Settings

pytestmark = pytest.mark.usefixtures("clean_env")


def test_defaults_mean_an_embedded_server() -> None:
    s = Settings()
    assert s.redis_url is None
    assert s.streams.reports == "tradewatch:reports"
    assert s.streams.alerts == "tradewatch:alerts"
    assert s.inbox == Path("var/inbox")


def test_environment_then_yaml_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "tw.yaml").write_text("namespace: fromyaml\nbatch_size: 64\nreclaim_idle: 2m\n")
    monkeypatch.setenv("TRADEWATCH_SETTINGS_FILE", str(tmp_path / "tw.yaml"))
    monkeypatch.setenv("TRADEWATCH_BATCH_SIZE", "128")
    monkeypatch.setenv("TRADEWATCH_RULES_FILES", "a.yaml, b.yaml")
    s = Settings()
    assert s.namespace == "fromyaml"
    assert s.batch_size == 128  # the environment wins over the file
    assert s.reclaim_idle == 120
    assert s.rules_files == [Path("a.yaml"), Path("b.yaml")]


def test_dotenv_and_password_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TRADEWATCH_REDIS_URL=redis://127.0.0.1:6390/0\n")
    (tmp_path / "pw").write_text("s3cret-pass\n")
    monkeypatch.setenv("TRADEWATCH_REDIS_PASSWORD_FILE", str(tmp_path / "pw"))
    s = Settings()
    assert s.redis_url is not None
    assert s.redis_url.get_secret_value() == "redis://127.0.0.1:6390/0"
    assert "6390" not in repr(s)  # a URL may hold a password: never shown
    assert s.redis_password() == "s3cret-pass"


def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEWATCH_POLL_INTERVAL", "10s")
    with pytest.raises(ValidationError, match="poll_interval"):
        Settings()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("15m", 900),
        ("2h", 7200),
        ("7d", 604800),
        ("1w", 604800),
        (30, 30),
        ("250ms", 0.25),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["soon", "-5s", "5 parsecs", True])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)
