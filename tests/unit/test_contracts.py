"""The contracts: models, their JSON Schema files, and the wire codec."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from schemas.alert import alert_id_for
from schemas.export import CONTRACTS, JSON_DIR, schema_text
from schemas.report import ImportReport
from services.wire import BadMessage, Entry, decode_alert, decode_report, report_fields


@pytest.mark.parametrize("name", sorted(CONTRACTS))
def test_json_schema_file_matches_its_model(name: str) -> None:
    path = JSON_DIR / name
    assert path.exists(), f"{path} is missing: run `make schemas`"
    assert path.read_text(encoding="utf-8") == schema_text(CONTRACTS[name]), (
        f"{path} drifted from its model: run `make schemas` and commit the result"
    )


def test_report_field_names_are_the_published_ones() -> None:
    schema = json.loads((JSON_DIR / "import-report.v1.json").read_text())
    assert set(schema["properties"]) >= {
        "schema_version", "report_id", "source", "reported_at", "origin_country",
        "destination_country", "crossing", "importer", "exporter", "items", "text", "url",
    }  # fmt: skip
    item = schema["$defs"]["ReportItem"]["properties"]
    assert set(item) >= {
        "description", "hs_code", "quantity", "unit", "unit_price", "currency", "condition", "disassembled",
    }  # fmt: skip
    assert schema["required"] == ["report_id", "source"]


def test_minimal_report_needs_id_source_and_items_or_text() -> None:
    assert ImportReport(report_id="r1", source="s", text="excavators to Sinuiju").items == []
    with pytest.raises(ValidationError, match="at least one of items or text"):
        ImportReport(report_id="r1", source="s")
    with pytest.raises(ValidationError, match="report_id"):
        ImportReport.model_validate({"source": "s", "text": "x"})


def test_report_normalises_codes_and_refuses_unknown_fields() -> None:
    report = ImportReport.model_validate(
        {
            "report_id": "r",
            "source": "s",
            "origin_country": "cn",
            "items": [{"hs_code": "8456.11", "currency": "cny"}],
        }
    )
    assert report.origin_country == "CN"
    assert report.items[0].hs_code == "845611"
    assert report.items[0].currency == "CNY"
    with pytest.raises(ValidationError, match="Extra inputs"):
        ImportReport.model_validate({"report_id": "r", "source": "s", "text": "x", "colour": "red"})
    with pytest.raises(ValidationError, match="HS code"):
        ImportReport.model_validate({"report_id": "r", "source": "s", "items": [{"hs_code": "84A6"}]})
    with pytest.raises(ValidationError, match="'NK' is not an ISO country code"):
        ImportReport.model_validate(
            {"report_id": "r", "source": "s", "text": "x", "destination_country": "NK"}
        )


def test_alert_id_is_stable_and_depends_on_rule_version() -> None:
    assert alert_id_for("r1", "rule", "v1") == alert_id_for("r1", "rule", "v1")
    assert alert_id_for("r1", "rule", "v1") != alert_id_for("r1", "rule", "v2")
    assert alert_id_for("r1", "rule", "v1") != alert_id_for("r2", "rule", "v1")


def test_wire_round_trip_and_precise_errors() -> None:
    report = ImportReport(report_id="r1", source="s", text="lathes")
    fields = {k.encode(): v.encode() for k, v in report_fields(report).items()}
    assert decode_report(Entry("1-0", fields)) == report

    with pytest.raises(BadMessage, match="no field 'report'.*fields present: data"):
        decode_report(Entry("1-0", {b"data": b"{}"}))
    with pytest.raises(BadMessage, match="not JSON"):
        decode_report(Entry("1-0", {b"report": b"{not json"}))
    with pytest.raises(BadMessage, match="not UTF-8"):
        decode_report(Entry("1-0", {b"report": b'{"a": "\xff"}'}))
    with pytest.raises(BadMessage, match="over the limit"):
        decode_report(Entry("1-0", {b"report": b"x" * 2000}), max_bytes=1000)
    with pytest.raises(BadMessage, match=r"items\.0\.hs_code"):
        decode_report(Entry("1-0", {b"report": b'{"report_id":"r","source":"s","items":[{"hs_code":"x"}]}'}))
    with pytest.raises(BadMessage, match="not a valid Alert"):
        decode_alert(Entry("1-0", {b"alert": b'{"alert_id": 3}'}))
