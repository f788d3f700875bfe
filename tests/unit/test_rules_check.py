"""``rules check``: values that could never match are refused, each with file, line, field, a plain
sentence and, where one is near, what was meant."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from schemas.report import ImportReport
from services.cli import app as cli
from services.goods.hscodes import load_nomenclature
from services.rules.engine import RuleSet, evaluate
from services.rules.loader import load_from_settings, load_ruleset, watched_files
from services.rules.reload import Reloader
from services.settings import Settings
from services.yamlfile import ConfigError
from tests.helpers import ROOT, shared_file

NOW = datetime(2026, 3, 10, tzinfo=UTC)
CATALOG = ROOT / "config/catalog.yaml"
RATES = ROOT / "config/rates.yaml"
PACK = ROOT / "config/rules.yaml"
EXAMPLE_EXCEPTIONS = ROOT / "config/exceptions.example.yaml"

# A few codes written the way the HS 2022 nomenclature file is (columns, BOM), for the checks
# that need one; the real file is used where ../shared is present.
NOMENCLATURE = """\ufeffsection,hscode,description,parent,level
XVI,84,"Machinery and mechanical appliances, boilers, nuclear reactors; parts thereof",TOTAL,2
XVI,8419,"Machinery, plant or laboratory equipment for the treatment of materials by a process involving a change of temperature",84,4
XVI,841933,Dryers; lyophilisation apparatus,8419,6
XVI,841934,"Dryers; for agricultural products, n.e.c. in heading 8419",8419,6
XVI,841939,Dryers; n.e.c. in heading 8419,8419,6
XVI,8456,Machine-tools; for working any material by removal of material,84,4
XVI,845611,Machine-tools; operated by laser,8456,6
XVI,845612,Machine-tools; operated by other light or photon beam processes,8456,6
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def rule(when: str, extra: str = "") -> str:
    """One rule file with one rule ``r`` whose ``when`` is given inline (flow YAML), on line 7."""
    return f"""version: 1
rules:
  - id: r
    title: R
    severity: high
    legal_basis: test
    when: {when}
{extra}"""


def problems(
    tmp_path: Path, text: str, nomenclature: Path | None = None, exceptions: str | None = None
) -> str:
    path = write(tmp_path, "rules.yaml", text)
    extra = [write(tmp_path, "team.yaml", exceptions)] if exceptions is not None else []
    with pytest.raises(ConfigError) as caught:
        load_ruleset([path], CATALOG, RATES, extra, nomenclature)
    return str(caught.value)


def loads(tmp_path: Path, text: str, nomenclature: Path | None = None) -> RuleSet:
    return load_ruleset([write(tmp_path, "rules.yaml", text)], CATALOG, RATES, (), nomenclature)


def report(**fields: object) -> ImportReport:
    base: dict[str, object] = {"report_id": "r1", "source": "test", "items": [{"description": "lathe"}]}
    return ImportReport.model_validate(base | fields)


# ---------------------------------------------------------------- crossings


def test_an_unknown_crossing_is_refused_with_the_one_meant(tmp_path: Path) -> None:
    text = problems(tmp_path, rule("{crossing: [Hunchon]}"))
    assert (
        f"{tmp_path}/rules.yaml:7: rules[0].when.crossing[0]: 'Hunchon' is not a crossing the catalog knows;"
        " did you mean Hunchun-Rason (Wonjong-ri)?" in text
    )


def test_a_crossing_far_from_any_is_refused_with_the_list(tmp_path: Path) -> None:
    text = problems(tmp_path, rule("{crossing: [Namyang]}"))
    assert (
        "rules[0].when.crossing[0]: 'Namyang' is not a crossing the catalog knows; the crossings are"
        " Dandong-Sinuiju, Hunchun-Rason (Wonjong-ri), Changbai-Hyesan" in text
    )


def test_a_value_naming_two_crossings_is_refused(tmp_path: Path) -> None:
    text = problems(tmp_path, rule("{crossing: [Dandong or Hyesan]}"))
    assert (
        "'Dandong or Hyesan' names 2 crossings (Dandong-Sinuiju and Changbai-Hyesan): give one per entry"
        in text
    )


def test_any_name_of_a_catalog_crossing_is_accepted_and_matches(tmp_path: Path) -> None:
    rules = loads(tmp_path, rule("{crossing: [丹东, Hunchun, hyesan]}"))
    assert {a.rule_id for a in evaluate(report(crossing="Dandong-Sinuiju"), rules, NOW)} == {"r"}
    assert {a.rule_id for a in evaluate(report(crossing="Rason"), rules, NOW)} == {"r"}
    assert not evaluate(report(crossing="Namyang"), rules, NOW)


def test_crossings_of_exceptions_are_checked_in_rules_and_in_exception_files(tmp_path: Path) -> None:
    text = problems(
        tmp_path,
        rule("{words: [x]}", "    exceptions:\n      - {id: e, reason: r, crossing: [Sinuju]}\n"),
        exceptions="version: 1\nexceptions:\n  r:\n    - {id: f, reason: r, crossing: [Hunchon]}\n",
    )
    assert (
        "rules.yaml:9: rules[0].exceptions[0].crossing[0]: 'Sinuju' is not a crossing the catalog knows;"
        " did you mean Dandong-Sinuiju?" in text
    )
    assert "team.yaml:4: exceptions.r[0].crossing[0]: 'Hunchon' is not a crossing the catalog knows" in text


# ---------------------------------------------------------------- countries


def test_an_unknown_country_is_refused_with_the_one_meant(tmp_path: Path) -> None:
    text = problems(tmp_path, rule("{destination_country: [KP, NK], origin_country: [Chna]}"))
    assert (
        "rules.yaml:7: rules[0].when.destination_country[1]: 'NK' is not an ISO country code"
        " (did you mean KP, North Korea?)" in text
    )
    assert "rules[0].when.origin_country[0]: 'Chna' is not a known country (did you mean CN, China?)" in text


@pytest.mark.parametrize("written", ["KP", "kp", "North Korea", "DPRK", "PRK", "408", "朝鲜"])
def test_a_rule_may_name_a_country_as_code_or_name(tmp_path: Path, written: str) -> None:
    rules = loads(tmp_path, rule(f"{{destination_country: [{written}]}}"))
    assert {a.rule_id for a in evaluate(report(destination_country="KP"), rules, NOW)} == {"r"}
    assert not evaluate(report(destination_country="KR"), rules, NOW)


# ---------------------------------------------------------------- HS codes, categories, currencies


def test_hs_codes_in_no_chapter_are_refused_without_a_nomenclature(tmp_path: Path) -> None:
    text = problems(tmp_path, rule('{item: {hs: ["77", "9801", "72-99", "841931"]}}'))
    assert (
        "rules.yaml:7: rules[0].when.item.hs[0]: chapter 77 is reserved in the HS: it holds no goods" in text
    )
    assert "rules[0].when.item.hs[1]: 9801 is in chapter 98, and there is no HS chapter 98" in text
    assert (
        "rules[0].when.item.hs[2]: range 72-99: there is no HS chapter 99: chapters run from 01 to 97" in text
    )
    assert "hs[3]" not in text  # a code of a real chapter passes when no nomenclature is given


def test_hs_codes_are_checked_against_a_nomenclature(tmp_path: Path) -> None:
    hs = write(tmp_path, "hs.csv", NOMENCLATURE)
    text = problems(tmp_path, rule('{item: {hs: ["841931", "845611", "84561100", "8457", "8420-8455"]}}'), hs)
    assert (
        f"rules[0].when.item.hs[0]: 841931 is not in the HS nomenclature ({hs}); did you mean 841933, 841934"
        " or 841939 under 8419" in text
    )
    assert "hs[1]" not in text
    assert "hs[2]" not in text  # a national tariff line is checked on its six HS digits
    assert f"rules[0].when.item.hs[3]: 8457 is not in the HS nomenclature ({hs}); did you mean 8456" in text
    assert f"rules[0].when.item.hs[4]: range 8420-8455 holds no code of the HS nomenclature ({hs})" in text
    assert loads(tmp_path, rule('{item: {hs: ["84", "8419", "841934", "8401-8456"]}}'), hs).rules


def test_a_nomenclature_that_is_missing_or_not_one_is_a_problem(tmp_path: Path) -> None:
    assert "nowhere.csv: no such file (the HS nomenclature)" in problems(
        tmp_path, rule("{words: [x]}"), tmp_path / "nowhere.csv"
    )
    other = write(tmp_path, "other.csv", "code,name\n84,machines\n")
    assert "other.csv:1: not an HS nomenclature: the columns hscode and description are missing" in problems(
        tmp_path, rule("{words: [x]}"), other
    )


def test_an_unknown_category_is_refused_with_the_one_meant(tmp_path: Path) -> None:
    text = problems(tmp_path, rule("{item: {categories: [machine-tool, spaceships]}}"))
    assert (
        "rules.yaml:7: rules[0].when.item.categories[0]: 'machine-tool' is not a category of the catalog;"
        " did you mean machine-tools?" in text
    )
    assert "categories[1]: 'spaceships' is not a category of the catalog; the categories are" in text


def test_a_currency_without_a_rate_is_refused(tmp_path: Path) -> None:
    text = problems(tmp_path, rule("{item: {unit_price: {gte: 5000, currency: CNH}}}"))
    assert "rules[0].when.item.unit_price.currency: currency CNH is not in the rates table (CNY, EUR," in text
    assert "USD); did you mean 'CNY'?" in text


# ---------------------------------------------------------------- keys, values and their form


def test_an_unknown_key_names_the_nearest_valid_one(tmp_path: Path) -> None:
    text = problems(
        tmp_path,
        rule(
            "{destnation_country: [KP], item: {categores: [vessels]}}",
            "    serverity: low\n    frequency: {count: 3, windw: 7d}\n",
        ),
    )
    assert (
        "rules.yaml:7: rules[0].when.destnation_country: unknown key 'destnation_country';"
        " did you mean 'destination_country'?" in text
    )
    assert "rules[0].when.item.categores: unknown key 'categores'; did you mean 'categories'?" in text
    assert "rules.yaml:8: rules[0].serverity: unknown key 'serverity'; did you mean 'severity'?" in text
    assert "rules.yaml:9: rules[0].frequency.windw: unknown key 'windw'; did you mean 'window'?" in text


def test_a_key_like_no_valid_one_lists_the_keys_there(tmp_path: Path) -> None:
    text = problems(tmp_path, rule("{item: {colour: [red]}}"))
    assert (
        "rules[0].when.item.colour: unknown key 'colour'; the keys here are all, any, not, hs, categories"
        in text
    )


def test_a_value_not_among_the_choices_names_the_nearest(tmp_path: Path) -> None:
    text = problems(
        tmp_path,
        rule("{item: {condition: [second-hand]}}", "    dedup: [crosing]\n").replace("high", "hihg"),
    )
    assert "rules.yaml:5: rules[0].severity: 'hihg' is not one of info, low, medium, high, critical;" in text
    assert "did you mean 'high'?" in text
    assert (
        "rules.yaml:7: rules[0].when.item.condition[0]: 'second-hand' is not one of new, used, unknown"
        in text
    )
    assert "rules.yaml:8: rules[0].dedup[0]: 'crosing' is not one of report_id, source, crossing," in text
    assert "did you mean 'crossing'?" in text


def test_values_of_the_wrong_form_or_type_are_explained(tmp_path: Path) -> None:
    text = problems(
        tmp_path,
        """version: 1
rules:
  - id: Shipyard Equipment
    title: ""
    severity: high
    legal_basis: 2397
    enabled: perhaps
    tags: shipyard
    when: {destination_country: KP, item: {hs: [], unit_price: {gte: cheap, currency: usd}}}
    exceptions:
      - {id: e, reason: r, importer: [A], expires: next year}
    frequency: {count: 1, window: 7d}
""",
    )
    expected = [
        "rules.yaml:3: rules[0].id: 'Shipyard Equipment' has the wrong form: write lower-case letters, digits,"
        " '-', '_' and '.', starting with a letter or a digit, at most 80 characters",
        "rules.yaml:4: rules[0].title: must not be empty",
        "rules.yaml:6: rules[0].legal_basis: expects text, not the number 2026 (quote it if it is meant as text:"
        " '2397')".replace("2026", "2397"),
        "rules.yaml:7: rules[0].enabled: expects true or false, not the text 'perhaps'",
        "rules.yaml:8: rules[0].tags: expects a list, not a single value: write [shipyard]",
        "rules.yaml:9: rules[0].when.destination_country: expects a list, not a single value: write [KP]",
        "rules.yaml:9: rules[0].when.item.hs: is empty: give at least one value",
        "rules.yaml:9: rules[0].when.item.unit_price.gte: expects a number, not the text 'cheap'",
        "rules.yaml:9: rules[0].when.item.unit_price.currency: 'usd' has the wrong form: write a currency's"
        " three-letter ISO 4217 code in capitals, such as USD or CNY",
        "rules.yaml:11: rules[0].exceptions[0].expires: expects a date written as 2026-12-31, not the text"
        " 'next year'",
        "rules.yaml:12: rules[0].frequency.count: 1 is out of range: it must be at least 2",
    ]
    for line in expected:
        assert line in text
    assert "Input should" not in text  # no library wording left
    assert "String should" not in text


def test_an_exception_file_for_a_rule_that_does_not_exist_names_the_nearest(tmp_path: Path) -> None:
    team = write(
        tmp_path,
        "team.yaml",
        "version: 1\nexceptions:\n  shipyard-equipmnt:\n    - {id: x, reason: y, importer: [Z]}\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_ruleset([PACK], CATALOG, RATES, [team])
    assert (
        f"{team}:3: exceptions.shipyard-equipmnt: no rule has the id 'shipyard-equipmnt', so its exceptions would"
        " never apply; did you mean 'shipyard-equipment'?" in str(caught.value)
    )


def test_a_rule_with_errors_of_form_does_not_hide_the_problems_of_the_others(tmp_path: Path) -> None:
    text = problems(
        tmp_path,
        """version: 1
rules:
  - id: broken
    title: B
    severity: urgent
    legal_basis: x
    when: {words: [x]}
  - id: sound
    title: S
    severity: high
    legal_basis: x
    when: {crossing: [Hunchon]}
""",
        exceptions="version: 1\nexceptions:\n  broken:\n    - {id: e, reason: r, importer: [A]}\n",
    )
    assert "rules.yaml:5: rules[0].severity: 'urgent' is not one of" in text
    assert "rules.yaml:12: rules[1].when.crossing[0]: 'Hunchon' is not a crossing the catalog knows" in text
    assert "no rule has the id 'broken'" not in text  # its own errors are told; its exceptions are no orphans


# ---------------------------------------------------------------- the shipped configuration


def test_the_shipped_configuration_passes() -> None:
    ruleset = load_ruleset([PACK], CATALOG, RATES, [EXAMPLE_EXCEPTIONS])
    assert len(ruleset.rules) >= 15


def test_the_shipped_configuration_passes_against_the_real_hs_2022_nomenclature() -> None:
    hs2022 = shared_file("data", "hs2022.csv")
    assert load_ruleset([PACK], CATALOG, RATES, [EXAMPLE_EXCEPTIONS], hs2022).rules


def test_the_real_nomenclature_knows_hs_2022_from_what_came_before(tmp_path: Path) -> None:
    hs2022 = shared_file("data", "hs2022.csv")
    nomenclature = load_nomenclature(hs2022)
    assert {"01", "8419", "841934", "847431"} <= set(nomenclature.descriptions)
    # Grain dryers moved from 8419.31 to 8419.34 in HS 2022: the old code is refused, the new one named.
    text = problems(tmp_path, rule('{item: {hs: ["841931"]}}'), hs2022)
    assert "841931 is not in the HS nomenclature" in text
    assert "did you mean 841933, 841934 or 841935 under 8419" in text


def cli_env(tmp_path: Path, exceptions: Path | None = None, **more: str) -> dict[str, str]:
    return {
        "TRADEWATCH_CATALOG_FILE": str(CATALOG),
        "TRADEWATCH_RATES_FILE": str(RATES),
        "TRADEWATCH_RULES_FILES": str(PACK),
        "TRADEWATCH_EXCEPTIONS_FILES": str(exceptions or ""),
        "TRADEWATCH_SETTINGS_FILE": str(tmp_path / "none.yaml"),
        "TRADEWATCH_LOG_FORMAT": "json",
        **more,
    }


def test_rules_check_passes_the_shipped_files_and_refuses_a_typo(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(cli, ["rules", "check"], env=cli_env(tmp_path, EXAMPLE_EXCEPTIONS))
    assert ok.exit_code == 0, ok.output
    assert "HS codes checked by chapter (give --nomenclature to check every code)" in ok.output
    two = rule("{crossing: [Hunchon]}") + rule("{destination_country: [NK]}").split("rules:\n")[1]
    bad = write(tmp_path, "bad.yaml", two.replace("id: r\n", "id: s\n", 1))
    refused = runner.invoke(cli, ["rules", "check", str(bad)], env=cli_env(tmp_path))
    assert refused.exit_code == 1
    assert "did you mean Hunchun-Rason (Wonjong-ri)?" in refused.output
    assert "(did you mean KP, North Korea?)" in refused.output
    assert "2 problem(s)" in refused.output


def test_rules_check_takes_the_nomenclature_from_the_option_or_the_setting(tmp_path: Path) -> None:
    hs = write(tmp_path, "hs.csv", NOMENCLATURE)
    bad = write(tmp_path, "bad.yaml", rule('{item: {hs: ["841931"]}}'))
    runner = CliRunner()
    assert runner.invoke(cli, ["rules", "check", str(bad)], env=cli_env(tmp_path)).exit_code == 0
    by_option = runner.invoke(
        cli, ["rules", "check", str(bad), "--nomenclature", str(hs)], env=cli_env(tmp_path)
    )
    assert by_option.exit_code == 1
    assert "841931 is not in the HS nomenclature" in by_option.output
    by_setting = runner.invoke(
        cli, ["rules", "check", str(bad)], env=cli_env(tmp_path, TRADEWATCH_NOMENCLATURE_FILE=str(hs))
    )
    assert by_setting.exit_code == 1
    assert "841931 is not in the HS nomenclature" in by_setting.output


# ---------------------------------------------------------------- a worker at start, a hot reload


def settings_for(tmp_path: Path, rules: Path, nomenclature: Path | None = None) -> Settings:
    return Settings(
        rules_files=[rules],
        catalog_file=CATALOG,
        rates_file=RATES,
        nomenclature_file=nomenclature,
        rules_reload_interval=0,
        data_dir=tmp_path / "data",
    )


def test_a_worker_refuses_to_start_on_a_value_that_can_never_match(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, write(tmp_path, "rules.yaml", rule("{destination_country: [NK]}")))
    with pytest.raises(ConfigError, match="'NK' is not an ISO country code"):
        load_from_settings(settings)


def test_the_nomenclature_setting_is_checked_and_watched(tmp_path: Path) -> None:
    hs = write(tmp_path, "hs.csv", NOMENCLATURE)
    settings = settings_for(tmp_path, write(tmp_path, "rules.yaml", rule('{item: {hs: ["841931"]}}')), hs)
    assert hs in watched_files(settings)
    with pytest.raises(ConfigError, match="841931 is not in the HS nomenclature"):
        load_from_settings(settings)


async def test_a_hot_reload_with_an_unknown_crossing_keeps_the_last_good_set(tmp_path: Path) -> None:
    path = write(tmp_path, "rules.yaml", rule("{crossing: [Hunchun]}"))
    settings = settings_for(tmp_path, path)
    applied: list[RuleSet] = []
    reloader = Reloader(settings, None, applied.append)  # type: ignore[arg-type]  # a failed load touches no server
    path.write_text(rule("{crossing: [Hunchon]}") + "# edited\n", encoding="utf-8")
    failed = await reloader.check()
    assert isinstance(failed, ConfigError)
    assert "did you mean Hunchun-Rason (Wonjong-ri)?" in str(failed)
    assert applied == []
