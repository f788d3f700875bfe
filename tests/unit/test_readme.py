"""The README stays true: every setting documented, every stream named."""

from __future__ import annotations

from schemas.streams import StreamNames
from services.settings import Settings
from tests.helpers import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_in_the_readme_table() -> None:
    missing = [
        f"TRADEWATCH_{name.upper()}"
        for name in Settings.model_fields
        if f"`TRADEWATCH_{name.upper()}`" not in README
    ]
    assert not missing, f"document these settings in README.md: {missing}"


def test_every_stream_is_in_the_readme_table() -> None:
    names = StreamNames()
    for stream in (
        names.reports,
        names.alerts,
        names.reports_rejected,
        names.reports_dead,
        names.alerts_dead,
    ):
        assert f"`{stream}`" in README, stream
