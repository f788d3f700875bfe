"""Countries: one table for reports, rules, silences and tables; codes, numbers and names alike."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from schemas import countries
from schemas.countries import country_code
from schemas.report import ImportReport
from services.ingest.sources.table import country


@pytest.mark.parametrize(
    ("written", "code"),
    [
        ("KP", "KP"),
        ("kp", "KP"),
        (" PRK ", "KP"),
        ("408", "KP"),
        ("North Korea", "KP"),
        ("north  korea", "KP"),
        ("DPRK", "KP"),
        ("Korea, Democratic People's Republic of", "KP"),
        ("朝鲜", "KP"),
        ("북한", "KP"),
        ("China", "CN"),
        ("156", "CN"),
        ("中国", "CN"),
        ("South Korea", "KR"),
        ("Viet Nam", "VN"),
        ("Vietnam", "VN"),
        ("SK", "SK"),  # Slovakia, not South Korea
        ("842", "US"),  # UN Comtrade's number for the United States
        ("4", "AF"),  # M49 numbers without their leading zeros
        ("Côte d'Ivoire", "CI"),
    ],
)
def test_codes_numbers_and_names_become_the_alpha_2_code(written: str, code: str) -> None:
    assert country_code(written) == code


def test_the_table_is_iso_3166_1() -> None:
    assert len(countries.CODES) == 249
    assert {"KP", "KR", "CN", "RU", "MN", "GB", "XK"} - countries.CODES == {"XK"}  # XK is not ISO's
    assert countries.NAMES["KP"] == "North Korea"


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("NK", "'NK' is not an ISO country code (did you mean KP, North Korea?)"),
        ("UK", "'UK' is not an ISO country code (did you mean GB, United Kingdom?)"),
        ("Noth Korea", "'Noth Korea' is not a known country (did you mean KP, North Korea"),
        ("Korea", "(did you mean KP, North Korea; KR, South Korea?)"),  # which one is for the writer to say
        ("Chna", "(did you mean CN, China?)"),
        ("XX", "'XX' is not an ISO country code; write its ISO code (KP, CN) or its name"),
        ("Atlantis", "'Atlantis' is not a known country; write its ISO code"),
    ],
)
def test_what_is_no_country_is_refused_with_what_was_meant(written: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        country_code(written)
    assert message in str(caught.value)


def test_a_report_may_name_its_countries() -> None:
    report = ImportReport.model_validate(
        {
            "report_id": "r",
            "source": "s",
            "text": "x",
            "origin_country": "China",
            "destination_country": "North Korea",
        }
    )
    assert (report.origin_country, report.destination_country) == ("CN", "KP")
    assert (
        ImportReport(report_id="r", source="s", text="x", destination_country="DPRK").destination_country
        == "KP"
    )
    with pytest.raises(
        ValidationError, match=r"'NK' is not an ISO country code \(did you mean KP, North Korea\?\)"
    ):
        ImportReport(report_id="r", source="s", text="x", destination_country="NK")


def test_tables_read_countries_with_the_same_table() -> None:
    assert country("Dem. People's Rep. of Korea") == "KP"
    assert country("Other Asia, nes") == "TW"  # UN Comtrade's name for Taiwan
    with pytest.raises(
        ValueError, match=r"did you mean KP, North Korea\?\); a table may also translate it under map:"
    ):
        country("NK")
