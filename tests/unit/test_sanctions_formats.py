"""Lists in every format read into one model; Hangul and Chinese names across scripts; vessels by
IMO number; reviewed exceptions honoured and shown. No server needed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from schemas.report import ImportReport
from schemas.sanctions import PartyCondition, ScreeningException
from services.sanctions.index import PARTY_KINDS, ScreeningIndex
from services.sanctions.korean import fold_hangul, korean_reading, readings, romanise
from services.sanctions.lists import ListFileError, ListFormat, detect_format, read_list
from services.sanctions.matcher import PartyScreen, exceptions_from, party_test
from services.sanctions.vessels import find_imo_numbers, imo_digits, imo_valid
from tests.helpers import ROOT

DATA = ROOT / "tests" / "data" / "sanctions"
OFAC = DATA / "ofac-sdn-sample.xml"
EU = DATA / "eu-fsf-sample.xml"
UK = DATA / "uk-sanctions-list-sample.xml"
FTM = DATA / "opensanctions-entities.ftm.json"
UN = ROOT / "tests" / "fixtures" / "sanctions" / "un-dprk-sample.xml"
CSV = ROOT / "tests" / "fixtures" / "sanctions" / "opensanctions-sample.csv"


# ---------------------------------------------------------------- formats


@pytest.mark.parametrize(
    ("path", "fmt"),
    [
        (UN, ListFormat.UN_XML),
        (CSV, ListFormat.OPENSANCTIONS_CSV),
        (OFAC, ListFormat.OFAC_SDN_XML),
        (EU, ListFormat.EU_XML),
        (UK, ListFormat.UK_XML),
        (FTM, ListFormat.FTM_JSON),
    ],
)
def test_the_format_is_told_from_the_content(path: Path, fmt: ListFormat, tmp_path: Path) -> None:
    assert detect_format(path) is fmt
    renamed = tmp_path / "list.dat"  # not from the name
    renamed.write_bytes(path.read_bytes())
    assert detect_format(renamed) is fmt


def test_ofac_sdn_keeps_names_akas_programmes_and_a_vessels_imo_and_former_name() -> None:
    parsed = read_list(OFAC, "ofac-sdn")
    assert parsed.date == "2026-02-27"
    by_id = {e.id: e for e in parsed.entries}
    ryonha = by_id["90001"]
    assert ryonha.reference == "OFAC-90001"
    assert ryonha.kind == "entity"
    assert "CHOSUN YUNHA MACHINERY JOINT OPERATION COMPANY" in ryonha.aliases
    assert "RYONHA" not in ryonha.aliases  # a weak a.k.a. is not screened
    assert ryonha.programs == ["DPRK2", "NPWMD"]
    assert {"dprk", "ofac-dprk2", "ofac-sdn"} <= set(ryonha.tags)
    assert by_id["90002"].kind == "person"
    assert by_id["90002"].name == "KIM, Jong Un"
    vessel = by_id["90003"]
    assert vessel.kind == "vessel"
    assert vessel.imo_numbers == ["8660313"]  # the MMSI is no IMO number
    assert vessel.previous_names == ["KUM GANG 7"]
    assert "dprk" not in by_id["90004"].tags


def test_the_eu_list_keeps_aliases_original_script_imo_and_the_regulations_date() -> None:
    parsed = read_list(EU, "eu-fsf")
    assert parsed.date.startswith("2026-03-02")
    by_ref = {e.reference: e for e in parsed.entries}
    ryonha = by_ref["EU.3847.47"]
    assert ryonha.original_script == ["조선련하기계합영회사"]
    assert ryonha.listed_on == "2013-04-19"  # the regulation's publication, not an amendment's
    assert {"dprk", "eu-prk", "eu-fsf"} <= set(ryonha.tags)
    assert by_ref["EU.5001.12"].kind == "person"
    ship = by_ref["EU.6002.33"]
    assert ship.kind == "vessel"  # an enterprise with an IMO number is a ship
    assert ship.imo_numbers == ["8604917"]


def test_the_uk_list_keeps_names_non_latin_names_regime_dates_and_ships() -> None:
    parsed = read_list(UK, "uk-sanctions")
    assert parsed.date == "2026-03-03T09:15:00"
    by_ref = {e.reference: e for e in parsed.entries}
    ryonha = by_ref["DPR0099"]
    assert ryonha.listed_on == "2013-01-22"
    assert ryonha.original_script == ["朝鲜联合机械贸易会社"]
    assert "dprk" in ryonha.tags
    ship = by_ref["DPR0200"]
    assert (ship.kind, ship.imo_numbers, ship.previous_names) == ("vessel", ["8691702"], ["SUN FLOWER"])
    assert by_ref["DPR0033"].original_script == ["리원호"]


def test_followthemoney_json_lines_lend_sanctions_programmes_to_their_entity() -> None:
    parsed = read_list(FTM, "opensanctions")
    by_id = {e.id: e for e in parsed.entries}
    assert set(by_id) == {"NK-ryonha", "NK-kim-jong-un", "NK-vessel-paek-ma"}  # no Sanction, no Address
    assert by_id["NK-ryonha"].programs == ["UN-SC1718"]
    assert "dprk" in by_id["NK-ryonha"].tags
    assert by_id["NK-ryonha"].listed_on == "2013-01-22"
    assert by_id["NK-kim-jong-un"].original_script == ["김정은"]
    vessel = by_id["NK-vessel-paek-ma"]
    assert (vessel.kind, vessel.imo_numbers, vessel.previous_names) == (
        "vessel",
        ["9066978"],
        ["WHITE HORSE 3"],
    )


@pytest.mark.parametrize(
    ("fmt", "content", "message"),
    [
        (ListFormat.OFAC_SDN_XML, "<CONSOLIDATED_LIST dateGenerated='2020-01-01'/>", "not <sdnList>"),
        (ListFormat.OFAC_SDN_XML, "<sdnList><sdnEntry><lastName>X</lastName></sdnEntry></sdnList>", "no uid"),
        (ListFormat.OFAC_SDN_XML, "<sdnList><publshInformation/></sdnList>", "no <sdnEntry> records"),
        (
            ListFormat.EU_XML,
            "<export><sanctionEntity logicalId='1'><nameAlias wholeName='A'/>",
            "not well-formed",
        ),
        (
            ListFormat.EU_XML,
            "<export><sanctionEntity logicalId='1'><nameAlias wholeName='A'/></sanctionEntity></export>",
            "no generationDate",
        ),
        (
            ListFormat.UK_XML,
            "<Designations><Designation><Names/></Designation></Designations>",
            "no UniqueID",
        ),
        (
            ListFormat.FTM_JSON,
            '{"id": "x", "schema": "Person", "properties": {"name": ["A"]}}\nnot json\n',
            ":2: not a JSON object",
        ),
        (ListFormat.FTM_JSON, '{"id": "x", "properties": {}}\n', "without a FollowTheMoney 'schema'"),
    ],
)
def test_a_file_not_in_its_format_is_refused_with_the_reason(
    tmp_path: Path, fmt: ListFormat, content: str, message: str
) -> None:
    path = tmp_path / "list"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ListFileError) as caught:
        read_list(path, "x", fmt)
    assert message in str(caught.value)


def test_an_unknown_file_or_the_closed_ofsi_csv_is_refused_with_what_to_do(tmp_path: Path) -> None:
    unknown = tmp_path / "list.xml"
    unknown.write_text("<html><body>not a list</body></html>", encoding="utf-8")
    with pytest.raises(ListFileError, match="root element <html> is none of the lists read"):
        detect_format(unknown)
    ofsi = tmp_path / "conlist.csv"
    ofsi.write_text("Name 6,Name 1,Group ID\nX,Y,1\n", encoding="utf-8")
    with pytest.raises(ListFileError, match="load the UK Sanctions List XML"):
        detect_format(ofsi)


# ---------------------------------------------------------------- Korean across scripts


@pytest.mark.parametrize(
    ("hangul", "latin"),
    [
        ("조선", "choson"),
        ("련하", "ryonha"),
        ("평양", "phyongyang"),
        ("청천강", "chongchonkang"),
    ],
)
def test_hangul_is_read_as_mccune_reischauer_without_diacritics(hangul: str, latin: str) -> None:
    assert romanise(hangul) == latin


def test_readings_give_english_words_sound_changes_and_persons_family_name_first() -> None:
    assert readings("조선련하기계합영회사")[0] == "korea ryonha machinery joint venture company"
    assert "choson ryonha kikye hapyong hoesa" in readings("조선련하기계합영회사")
    assert "amnokkang development bank" in readings("압록강개발은행")  # as pronounced
    assert readings("김정은") == ("Kim Chong Un",)
    assert readings("현대미포조선")[0].endswith("shipbuilding")  # a South Korean yard, not Korea
    assert fold_hangul("련하") == fold_hangul("연하")
    assert korean_reading("大同信贷银行") == "대동신용은행"
    assert korean_reading("金正恩", person=True) == "김정은"


@pytest.fixture(scope="module")
def lists_index() -> ScreeningIndex:
    entries = []
    for path, name in ((UN, "un-sc"), (FTM, "opensanctions"), (OFAC, "ofac-sdn"), (UK, "uk-sanctions")):
        entries += read_list(path, name).entries
    return ScreeningIndex.build(entries)


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("조선련하기계합영회사", "KPe.016"),  # Hangul against the romanised listing
        ("조선연하기계합영회사", "KPe.016"),  # South Korean spelling (initial-sound law)
        ("청천강해운회사", "KPe.022"),
        ("대동신용은행", "KPe.023"),
        ("리원호", "KPi.033"),
        ("Won Ho Ri", "KPi.033"),
        ("김정은", "NK-kim-jong-un"),
        ("Jong Un Kim", "NK-kim-jong-un"),
        ("金正恩", "NK-kim-jong-un"),
        ("大同信贷银行", "KPe.023"),  # Chinese read in Korean
    ],
)
def test_names_in_hangul_and_chinese_find_their_listing(
    lists_index: ScreeningIndex, name: str, reference: str
) -> None:
    found = lists_index.search(name, 0.9, ["un-dprk", "opensanctions"], PARTY_KINDS).matches
    assert reference in [m.entry.reference for m in found], [m.as_dict() for m in found]


def test_a_listing_in_hangul_only_is_found_by_its_latin_name() -> None:
    entry = (
        read_list(FTM, "x")
        .entries[0]
        .model_copy(update={"name": "조선련하기계합영회사", "aliases": [], "original_script": []})
    )
    index = ScreeningIndex.build([entry])
    found = index.search("Korea Ryonha Machinery JV Co", 0.9).matches
    assert found
    assert found[0].note.startswith("listed in Hangul, read as")


@pytest.mark.parametrize(
    "name",
    ["김종은", "장창호", "현대미포조선", "대우조선해양", "조선일보", "Kim Jong Il", "Hyundai Mipo Dockyard"],
)
def test_near_misses_stay_below_the_threshold(lists_index: ScreeningIndex, name: str) -> None:
    assert (
        lists_index.search(name, 0.9, ["un-dprk", "opensanctions", "uk-sanctions"], PARTY_KINDS).matches == []
    )


def test_a_hangul_name_is_judged_by_the_hangul_where_the_list_gives_it(lists_index: ScreeningIndex) -> None:
    """김종은 is not 김정은 (OpenSanctions lists the Hangul); against a listing in Latin letters only
    (OFAC's KIM, Jong Un) it stays a match to check: McCune-Reischauer writes 정 and 종 both Jong."""
    assert lists_index.search("김종은", 0.9, ["opensanctions"], PARTY_KINDS).matches == []
    near = lists_index.search("김종은", 0.5, ["opensanctions"], PARTY_KINDS).matches
    assert near[0].score < 0.9
    latin_only = lists_index.search("김종은", 0.9, ["ofac-sdn"], PARTY_KINDS).matches
    assert [m.note for m in latin_only] == ['read as "Kim Chong Un"']


# ---------------------------------------------------------------- vessels


def test_imo_numbers_are_read_checked_and_found_in_text() -> None:
    assert imo_valid("9074729")
    assert imo_valid("8660313")
    assert not imo_valid("8660314")
    assert imo_digits("IMO No. 8660313") == imo_digits("IMO8660313") == "8660313"
    found = find_imo_numbers("tanker (IMO No. 8660313), then IMO: 8604917 and IMO 8660314; phone 1234567")
    assert [(m.digits, m.valid) for m in found] == [("8660313", True), ("8604917", True), ("8660314", False)]


def test_a_vessel_is_a_hit_by_imo_whatever_its_name_and_by_former_name(lists_index: ScreeningIndex) -> None:
    renamed = lists_index.search_vessel("ORIENTAL STAR", "IMO 8660313", 0.9).matches
    assert [m.entry.reference for m in renamed] == ["OFAC-90003"]
    assert renamed[0].note == "IMO 8660313"
    former = lists_index.search_vessel("Kum Gang 7", None, 0.9).matches
    assert [m.entry.reference for m in former] == ["OFAC-90003"]
    assert former[0].note == 'former name "KUM GANG 7"'
    assert lists_index.search_vessel("KUM GANG 8", None, 0.9).matches == []  # another hull number
    wrong = lists_index.search_vessel("SEA STAR", "IMO 8660314", 0.9)
    assert wrong.matches == []
    assert wrong.notes == ["IMO 8660314 has a wrong check digit: not a number to match"]
    other = lists_index.search_vessel("CHON MA SAN", "9123453", 0.9)
    assert other.matches == []
    assert "another ship" in other.notes[0]
    assert lists_index.search("KUM GANG 7", 0.9, kinds=PARTY_KINDS).matches == []  # a party is no vessel


def test_a_reports_vessels_and_the_imo_numbers_in_its_text_are_screened(lists_index: ScreeningIndex) -> None:
    report = ImportReport(
        report_id="v1",
        source="test",
        vessels=[{"name": "SUN FLOWER", "imo": "IMO 8691702"}],
        text="The cargo was moved by ship-to-ship transfer to the tanker IMO No. 8660313 (and IMO 8660314).",
    )
    assert report.vessels[0].imo == "8691702"
    screen = PartyScreen(lists_index, report)
    cond = PartyCondition(lists=["dprk"], roles=["vessel"])
    evidence = party_test(cond)(screen)
    assert evidence is not None
    text = " | ".join(evidence)
    assert 'vessel "SUN FLOWER" matches DPR0200 YU SON' in text
    assert ": the same IMO number (IMO 8691702), score 1.00" in text
    assert (
        'vessel "IMO No. 8660313" matches OFAC-90003 CHON MA SAN (DPRK4): the same IMO number (IMO 8660313)'
        in text
    )
    assert "IMO 8660314 has a wrong check digit: not a number to match" in text


def test_a_vessel_in_a_report_needs_a_name_or_a_valid_looking_number() -> None:
    with pytest.raises(ValueError, match="a vessel needs a name or an imo"):
        ImportReport(report_id="v", source="t", text="x", vessels=[{}])
    with pytest.raises(ValueError, match="an IMO number is seven digits"):
        ImportReport(report_id="v", source="t", text="x", vessels=[{"imo": "IMO 12345"}])


# ---------------------------------------------------------------- reviewed exceptions


def test_a_reviewed_exception_holds_the_match_back_and_says_so(lists_index: ScreeningIndex) -> None:
    now = datetime(2026, 3, 6, tzinfo=UTC)
    exception = ScreeningException(
        name="Korea Ryonha Machinery J/V Co., Ltd.",
        entry="KPe.016",
        by="j.doe",
        reason="a Shenyang toolmaker of the same name, checked against its registration",
        expires=now + timedelta(days=90),
    )
    index = ScreeningIndex.build(lists_index.entries)
    index.exceptions = exceptions_from([exception])
    cond = PartyCondition(lists=["un-dprk"])
    report = ImportReport(
        report_id="x1", source="t", importer="KOREA RYONHA MACHINERY JV CO LTD", text="lathes"
    )
    screen = PartyScreen(index, report, now)
    assert party_test(cond)(screen) is None
    assert screen.skip_lines() == [
        'screening skipped "KOREA RYONHA MACHINERY JV CO LTD" against KPe.016 KOREA RYONHA MACHINERY JOINT '
        "VENTURE CORPORATION: exception by j.doe until 2026-06-04 (a Shenyang toolmaker of the same name, "
        "checked against its registration)"
    ]
    assert party_test(cond)(screen.ignoring_exceptions()) is not None
    later = PartyScreen(index, report, now + timedelta(days=91))  # expired: screened again
    assert party_test(cond)(later) is not None
