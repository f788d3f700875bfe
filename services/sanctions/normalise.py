"""Names reduced to keys that survive the ways people write them.

A name goes through three steps:

1. ``fold``: Unicode NFKC, case folded, accents and breves dropped (``Ryŏnha`` -> ``ryonha``),
   apostrophes dropped (``Ch'ŏngsŏng`` -> ``chongsong``), ``&`` read as ``and``, punctuation and
   hyphens as spaces, runs of single letters joined (``J/V`` -> ``jv``, ``K.O.M.I.D.`` -> ``komid``),
   traditional Chinese characters common in company names mapped to simplified ones.
2. ``tokens``: legal-form words dropped (Co., Ltd., Corporation, JV, Trading, General, Company,
   公司, 会社, 회사 ...), since the same company is registered, listed and reported under
   different ones.
3. ``phonetic``: each Latin token folded over the usual romanisation variants of Korean names
   (McCune-Reischauer and Revised Romanization, Korea/Corea, r/l, voiced/unvoiced stops,
   ``eo``/``o``, ``eu``/``u``, doubled letters): ``Ryonha`` ~ ``Ryeonha`` ~ ``Lyonha``,
   ``Taedong`` ~ ``Daedong``, ``Chongchon`` ~ ``Jongcheon``.

The key of a name is its phonetic tokens; ``compact`` joins them without spaces, which makes
``Chong Chon Gang`` and ``Chongchongang`` the same.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from services.sanctions.korean import fold_hangul, has_hangul
from services.textmatch import CJK_RUN, is_cjk, normalise

# Legal forms and generic words of company names (after folding). Multi-word forms first.
_LEGAL_PHRASES = (
    "joint venture",
    "joint operation",
    "joint stock",
    "limited liability",
    "group of companies",
    "co operative",
    "public limited",
)
LEGAL_WORDS = frozenset(
    [
        "co",
        "company",
        "companies",
        "corp",
        "corporation",
        "cooperation",
        "coop",
        "ltd",
        "limited",
        "llc",
        "inc",
        "incorporated",
        "plc",
        "jv",
        "jsc",
        "gmbh",
        "ag",
        "sa",
        "pte",
        "pty",
        "bv",
        "nv",
        "srl",
        "spa",
        "kk",
        "fze",
        "fzco",
        "est",
        "establishment",
        "trading",
        "trade",
        "traders",
        "general",
        "enterprise",
        "enterprises",
        "group",
        "holding",
        "holdings",
        "firm",
        "hoesa",
        "hwesa",
        "chonghoesa",
        "kongsa",
        "habyong",
        "hapyong",
        "habyeong",
        "hapyeong",
        "hapjak",
    ]
)
# Chinese and Korean legal forms, longest first (no spaces between words in these scripts).
_CJK_LEGAL = (
    "有限责任公司",
    "股份有限公司",
    "有限公司",
    "贸易会社",
    "总会社",
    "合营会社",
    "合营公司",
    "贸易公司",
    "集团",
    "公司",
    "会社",
    "주식회사",
    "합영회사",
    "합작회사",
    "무역회사",
    "무역총회사",
    "총회사",
    "유한회사",
    "회사",
    "합영",
    "합작",
    "무역",
    "贸易",
    "合营",
)
# Words for "Korea" before a Chinese or Korean name (the Latin ones are WEAK_WORDS).
_CJK_KOREA = ("조선", "朝鲜", "북한", "北韩")
# Words too common in DPRK names to tell two of them apart ("Korea" is in half the list).
WEAK_WORDS = frozenset(
    [
        "korea",
        "korean",
        "dprk",
        "choson",
        "chosun",
        "joson",
        "north",
        "democratic",
        "peoples",
        "republic",
        "the",
        "of",
        "and",
    ]
)

# Traditional characters common in company names -> simplified (not a full converter).
_TRAD_TO_SIMP = str.maketrans(
    "國貿聯連機會華務長門業發開術協東號產進電鐵鋼運輸輪廠實總貨亞際營灣鮮島銀經濟礦資設備裝製幹龍鳳紅綠興強達遠氣韓鴨學軍農藝漁貝臺萬與專車輛鴻",
    "国贸联连机会华务长门业发开术协东号产进电铁钢运输轮厂实总货亚际营湾鲜岛银经济矿资设备装制干龙凤红绿兴强达远气韩鸭学军农艺渔贝台万与专车辆鸿",
)

_APOSTROPHES = re.compile(r"[\'’‘`´ʼʻ]")
_NON_WORD = re.compile(r"[^\w]+")


@lru_cache(maxsize=65_536)
def fold(text: str) -> str:
    """Case, accents, apostrophes, punctuation and spacing folded; tokens separated by one space."""
    text = normalise(text).translate(_TRAD_TO_SIMP)
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    text = unicodedata.normalize("NFC", text)  # Hangul syllables back together (NFKD split them into jamo)
    text = _APOSTROPHES.sub("", text).replace("&", " and ").replace("#", " ")
    text = _NON_WORD.sub(" ", text).replace("_", " ")
    # Split CJK runs from Latin letters and digits beside them: "ryonha朝鲜" -> "ryonha 朝鲜".
    text = CJK_RUN.sub(lambda m: f" {m.group(0)} ", text)
    tokens = text.split()
    joined: list[str] = []
    run: list[str] = []
    for token in tokens:  # J/V -> jv; K.O.M.I.D. -> komid
        if len(token) == 1 and token.isascii() and token.isalpha():
            run.append(token)
            continue
        if run:
            joined.append("".join(run))
            run = []
        joined.append(token)
    if run:
        joined.append("".join(run))
    return " ".join(joined)


# Abbreviations written in registrations and manifests, spelled out.
ABBREVIATIONS = {
    "intl": "international",
    "shpg": "shipping",
    "mfg": "manufacturing",
    "dev": "development",
    "devt": "development",
    "tech": "technology",
    "engg": "engineering",
    "equip": "equipment",
    "mach": "machinery",
    "banking": "bank",
    "commission": "committee",
    # Korean words of company names as romanised, read as the English word listings use.
    "unhaeng": "bank",
    "eunhaeng": "bank",
    "muyok": "trading",
    "muyeok": "trading",
    "haeun": "shipping",
    "kigye": "machinery",
    "gigye": "machinery",
    "kikye": "machinery",
    "yonhap": "united",
    "ryonhap": "united",
    "yeonhap": "united",
}


def strip_legal(tokens: list[str]) -> list[str]:
    """Spell out abbreviations, drop legal-form words and phrases; keep the name when nothing
    else is left."""
    tokens = [ABBREVIATIONS.get(t, t) for t in tokens]
    text = " " + " ".join(tokens) + " "
    for phrase in _LEGAL_PHRASES:
        text = text.replace(f" {phrase} ", " ")
    kept = []
    for token in _joined_cjk(text.split()):
        if token in LEGAL_WORDS:
            continue
        if is_cjk(token[0]):
            token = _cjk_core(token)
            if not token:
                continue
        kept.append(token)
    return kept or tokens


def _joined_cjk(tokens: list[str]) -> list[str]:
    """Neighbouring Chinese or Korean tokens as one: spacing in Korean is free, Chinese has none."""
    out: list[str] = []
    for token in tokens:
        if out and is_cjk(token[0]) and is_cjk(out[-1][-1]):
            out[-1] += token
        else:
            out.append(token)
    return out


def _cjk_core(token: str) -> str:
    """A Chinese or Korean name without its legal forms at the end (repeatedly: 무역총회사), the
    word for Korea before it (조선련하기계 -> 련하기계) and, in Hangul, the initial-sound law
    folded (련하 = 연하)."""
    changed = True
    while changed:
        changed = False
        for form in _CJK_LEGAL:
            if token.endswith(form) and len(token) > len(form):
                token = token[: -len(form)]
                changed = True
                break
    for korea in _CJK_KOREA:
        if token.startswith(korea) and len(token) > len(korea) + 1:
            token = token[len(korea) :]
            break
    if token in _CJK_LEGAL:
        return ""
    return fold_hangul(token) if has_hangul(token) else token


_PHONETIC_STEPS = (
    ("tch", "ch"),
    ("ch", "\x01"),
    ("sh", "s"),
    ("kh", "k"),
    ("ph", "p"),
    ("th", "t"),
    ("c", "k"),
    ("j", "\x01"),
    ("\x01", "j"),
    ("g", "k"),
    ("b", "p"),
    ("d", "t"),
    ("l", "r"),
    ("eo", "o"),
    ("eu", "u"),
    ("oo", "u"),
    ("wo", "o"),
    ("v", "p"),
)
_DOUBLES = re.compile(r"([a-z])\1+")


@lru_cache(maxsize=65_536)
def phonetic(token: str) -> str:
    """One Latin token folded over romanisation variants; other scripts and numbers unchanged."""
    if not token.isascii() or not token.isalpha():
        return token
    for old, new in _PHONETIC_STEPS:
        token = token.replace(old, new)
    token = _DOUBLES.sub(r"\1", token)
    if token.startswith(("ry", "ny")) and len(token) > 3:  # Ryonha ~ Yonha; Nyongbyon ~ Yongbyon
        token = token[1:]
    if token.startswith("ri") and len(token) > 3:  # Rimyong ~ Imyong
        token = token[1:]
    return token


def key_tokens(name: str) -> tuple[str, ...]:
    """The phonetic tokens of a name, legal forms dropped."""
    return tuple(phonetic(t) for t in strip_legal(fold(name).split()))


def core(tokens: tuple[str, ...]) -> tuple[str, ...]:
    """The tokens that tell names apart: without the words every other DPRK name has."""
    kept = tuple(t for t in tokens if t not in WEAK_WORDS and phonetic(t) not in _WEAK_PHONETIC)
    return kept or tokens


_WEAK_PHONETIC = frozenset(phonetic(w) for w in WEAK_WORDS)


def compact(tokens: tuple[str, ...]) -> str:
    return "".join(tokens)
