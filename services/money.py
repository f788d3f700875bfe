"""Money: currency rates, amounts written in text (English, Chinese, Korean), conversion.

Used where a price enters the pipeline (tables, articles) and where a rule compares a value
(``unit_price_above``): one rates table, one way of reading and writing an amount.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field

from schemas.base import StrictModel
from services.yamlfile import ConfigError, Problem, load


class Rates:
    """Currency conversion through one base currency (``1 unit = rate x base``)."""

    def __init__(self, base: str, rates: dict[str, float]) -> None:
        self.base = base
        self.rates = {base: 1.0, **rates}

    def convert(self, amount: float, from_: str, to: str) -> float | None:
        if from_ not in self.rates or to not in self.rates:
            return None
        return amount * self.rates[from_] / self.rates[to]


class RatesFile(StrictModel):
    """``config/rates.yaml``."""

    version: Literal[1] = 1
    base: str = Field(pattern=r"^[A-Z]{3}$")
    rates: dict[str, float] = Field(description="1 unit of the currency is this much of base")


def load_rates(path: Path) -> Rates:
    doc = load(path)
    parsed = doc.validate(RatesFile)
    problems = [
        Problem(doc.file, doc.line_of(("rates", code)), f"rates.{code}: {reason}")
        for code, rate in parsed.rates.items()
        for reason in (
            ["not a 3-letter currency code"] if not (len(code) == 3 and code.isupper()) else []
        ) + (["a rate must be above 0"] if rate <= 0 else [])
    ]  # fmt: skip
    if problems:
        raise ConfigError(problems)
    return Rates(parsed.base, parsed.rates)


def format_amount(amount: float) -> str:
    """``1234.5`` -> ``1,234.5``; whole amounts without decimals."""
    return f"{amount:,.2f}".rstrip("0").rstrip(".")


# ---------------------------------------------------------------- amounts written in text

_CURRENCY_WORDS: dict[str, str] = {
    "yuan": "CNY", "rmb": "CNY", "cny": "CNY", "renminbi": "CNY", "元": "CNY", "人民币": "CNY",
    "위안": "CNY", "us dollars": "USD", "us dollar": "USD", "dollars": "USD", "dollar": "USD",
    "usd": "USD", "美元": "USD", "달러": "USD", "euros": "EUR", "euro": "EUR", "eur": "EUR",
    "north korean won": "KPW", "kpw": "KPW", "krw": "KRW", "won": "KPW", "원": "KPW",
    "rubles": "RUB", "roubles": "RUB", "rub": "RUB", "yen": "JPY", "jpy": "JPY",
}  # fmt: skip
_CURRENCY_SIGNS = {"$": "USD", "us$": "USD", "¥": "CNY", "€": "EUR", "₩": "KPW", "£": "GBP"}
_MULTIPLIERS = {
    "thousand": 1e3, "k": 1e3, "million": 1e6, "m": 1e6, "千": 1e3, "万": 1e4, "萬": 1e4,
    "亿": 1e8, "천": 1e3, "만": 1e4, "억": 1e8,
}  # fmt: skip
_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_MULT = r"(?:\s?(?:thousand|million|k|m|千|万|萬|亿|천|만|억)(?![a-z]))?"
_SIGN = r"(?:US\$|\$|¥|€|₩|£)"
_WORD = "|".join(sorted((re.escape(w) for w in _CURRENCY_WORDS), key=len, reverse=True))
_PRICE = re.compile(
    rf"(?P<s1>{_SIGN})?\s?(?P<a>{_NUM})(?P<ma>{_MULT})"
    rf"(?:\s*(?:-|–|—|~|～|to|and|至|到|에서)\s*(?P<s2>{_SIGN})?\s?(?P<b>{_NUM})(?P<mb>{_MULT}))?"
    rf"\s*(?P<w>{_WORD})?(?![a-z])",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Price:
    low: float
    high: float
    currency: str
    text: str
    low_base: float | None = None
    high_base: float | None = None

    def stated(self) -> str:
        amount = (
            format_amount(self.low)
            if self.low == self.high
            else f"{format_amount(self.low)}-{format_amount(self.high)}"
        )
        return f"{amount} {self.currency}"


def _amount(number: str, mult: str) -> float:
    return float(number.replace(",", "")) * _MULTIPLIERS.get(mult.strip().lower(), 1.0)


def find_prices(text: str, rates: Rates | None = None) -> list[Price]:
    """Amounts with a currency (sign or word); ranges as one price; years and counts ignored."""
    prices = []
    for match in _PRICE.finditer(text):
        sign = (match["s1"] or match["s2"] or "").lower()
        word = (match["w"] or "").lower()
        currency = _CURRENCY_WORDS.get(word) or _CURRENCY_SIGNS.get(sign)
        if currency is None:
            continue
        mb = match["mb"] or ""
        ma = match["ma"] or (mb if match["b"] else "")
        low = _amount(match["a"], ma)
        high = _amount(match["b"], mb) if match["b"] else low
        if high < low:
            low, high = high, low
        base = [rates.convert(v, currency, rates.base) for v in (low, high)] if rates else [None, None]
        prices.append(Price(low, high, currency, match.group(0).strip(), base[0], base[1]))
    return prices
