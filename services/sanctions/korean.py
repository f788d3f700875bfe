"""Korean names across scripts: Hangul read in Latin letters as DPRK names are listed, and Chinese
characters read in Korean.

The UN list gives DPRK names romanised, mostly McCune-Reischauer without its diacritics
(조선 -> Choson, 련하 -> Ryonha, 평양 -> Pyongyang), sometimes Revised Romanization (Joseon,
Ryeonha); reports may write the same name in Hangul. :func:`readings` turns a Hangul name into the
Latin names it may be listed under:

- letter by letter (``ㄹ`` kept as R at the start of a word, as the DPRK writes it: 련하 Ryonha,
  로동 Rodong) and as pronounced (압록강 Amnokkang, 천리마 Chollima, 금룡 Kumnyong); the
  normaliser's phonetic folding then makes McCune-Reischauer and Revised Romanization one key
  (Chosŏn/Choson/Joseon, Ryŏnha/Ryonha/Ryeonha);
- the usual words of company names in English where a listing uses the English word (조선 Korea
  at the start, shipbuilding at the end of a South Korean yard's name; 무역 trading, 은행 bank,
  해운 shipping, 기계 machinery, 합영 joint venture, 총회사 general corporation, 련합 united ...),
  the compound split at those words (조선|련하|기계|합영|회사);
- a person's name (a family name and one or two syllables) as family name first, given name
  syllables apart (김정은 -> Kim Jong Un); word order does not matter to the scoring.

Chinese characters are read in Korean (:func:`korean_reading`: 大同信贷银行 -> 대동신용은행) for DPRK
names written in Chinese, whose listings are romanised from Korean, never from Mandarin.
"""

from __future__ import annotations

import re
from functools import lru_cache

from services.textmatch import is_cjk

_S_BASE, _S_LAST = 0xAC00, 0xD7A3


def is_hangul(char: str) -> bool:
    return _S_BASE <= ord(char) <= _S_LAST


def has_hangul(text: str) -> bool:
    return any(is_hangul(c) for c in text)


def has_han(text: str) -> bool:
    """Chinese characters (and no Hangul)."""
    return any(is_cjk(c) and not is_hangul(c) for c in text) and not has_hangul(text)


def _split(syllable: str) -> tuple[int, int, int]:
    code = ord(syllable) - _S_BASE
    return code // 588, (code % 588) // 28, code % 28


def _join(initial: int, vowel: int, final: int) -> str:
    return chr(_S_BASE + initial * 588 + vowel * 28 + final)


# McCune-Reischauer without diacritics, DPRK style: aspirates with h (kh, th, ph), ㅓ and ㅗ both o.
_INITIALS = (
    "k",
    "kk",
    "n",
    "t",
    "tt",
    "r",
    "m",
    "p",
    "pp",
    "s",
    "ss",
    "",
    "ch",
    "tch",
    "ch",
    "kh",
    "th",
    "ph",
    "h",
)
_VOWELS = (
    "a", "ae", "ya", "yae", "o", "e", "yo", "ye", "o", "wa", "wae", "oe", "yo", "u", "wo", "we", "wi", "yu", "u", "ui", "i",
)  # fmt: skip
_FINALS = (
    "", "k", "k", "k", "n", "n", "n", "t", "l", "k", "m", "l", "l", "l", "p", "l", "m", "p", "p", "t", "t", "ng", "t",
    "t", "k", "t", "p", "t",
)  # fmt: skip
# Final jamo indexes.
_F_NONE, _F_K, _F_N, _F_T, _F_L, _F_M, _F_P, _F_NG = 0, 1, 4, 7, 8, 16, 17, 21
# Initial jamo indexes.
_I_N, _I_R, _I_M, _I_SILENT = 2, 5, 6, 11


def _final_class(final: int) -> int:
    """The sound a final consonant has before another consonant: k, t, p, n, l, m, ng or none."""
    text = _FINALS[final]
    return {"k": _F_K, "t": _F_T, "p": _F_P, "n": _F_N, "l": _F_L, "m": _F_M, "ng": _F_NG}.get(text, _F_NONE)


def romanise(word: str, pronounced: bool = False) -> str:
    """A Hangul word in Latin letters. ``pronounced``: with the sound changes across syllables
    (nasal assimilation: 압록 amnok, 국민 kungmin; ㄴ+ㄹ as ll: 천리 chölli; ㄹ after m, ng as n)."""
    syllables = [_split(c) if is_hangul(c) else None for c in word]
    out: list[str] = []
    for i, parts in enumerate(syllables):
        if parts is None:
            out.append(word[i])
            continue
        initial, vowel, final = parts
        nxt = syllables[i + 1] if i + 1 < len(syllables) else None
        head = _INITIALS[initial]
        tail = _FINALS[final]
        if pronounced:
            prev = syllables[i - 1] if i > 0 else None
            if prev is not None and initial == _I_R:
                before = _final_class(prev[2])
                if before in (_F_L, _F_N):
                    head = "l"  # 천리 -> chollima, 실라 -> silla
                elif before != _F_NONE:
                    head = "n"  # 금룡 -> kumnyong, 압록 -> amnok (with the final below)
            if nxt is not None:
                n_initial = nxt[0]
                cls = _final_class(final)
                nasal_next = n_initial in (_I_N, _I_M) or (
                    n_initial == _I_R and cls not in (_F_L, _F_N, _F_NONE)
                )
                if nasal_next and cls == _F_K:
                    tail = "ng"
                elif nasal_next and cls == _F_T:
                    tail = "n"
                elif nasal_next and cls == _F_P:
                    tail = "m"
                elif n_initial == _I_R and cls == _F_N:
                    tail = "l"
        elif i > 0 and initial == _I_R and syllables[i - 1] is not None:
            head = "r"
        if i == 0 and initial == _I_R:
            head = "r"  # the DPRK keeps an initial ㄹ: 련하 Ryonha, 로동 Rodong
        out.append(head + _VOWELS[vowel] + tail)
    return "".join(out)


# ---------------------------------------------------------------- initial-sound law

_DUEUM_R = {0: 2, 1: 2, 8: 2, 11: 2, 13: 2, 18: 2}  # 라 래 로 뢰 루 르 -> 나 내 노 뇌 누 느
_DUEUM_Y = frozenset({2, 3, 6, 7, 12, 17, 20})  # 랴 럐 려 례 료 류 리 (and ㄴ before them) -> silent


def fold_hangul(text: str) -> str:
    """The South Korean initial-sound law undone in both directions, so 련하/연하, 리원호/이원호,
    릉라/능라 share a key (applied to every syllable: names are compounds)."""
    out = []
    for char in text:
        if not is_hangul(char):
            out.append(char)
            continue
        initial, vowel, final = _split(char)
        if initial == _I_R:
            initial = _I_SILENT if vowel in _DUEUM_Y else _I_N
        elif initial == _I_N and vowel in _DUEUM_Y:
            initial = _I_SILENT
        out.append(_join(initial, vowel, final))
    return "".join(out)


# ---------------------------------------------------------------- words of names

# Hangul word -> the English word listings use. Single syllables only at the end of a name.
WORDS: dict[str, str] = {
    "조선": "korea",
    "북한": "korea",
    "한국": "korea",
    "무역": "trading",
    "총회사": "general corporation",
    "회사": "company",
    "주식회사": "company",
    "유한회사": "company",
    "공사": "corporation",
    "합영": "joint venture",
    "합작": "joint venture",
    "련합": "united",
    "연합": "united",
    "은행": "bank",
    "해운": "shipping",
    "해양": "marine",
    "해사": "maritime",
    "선박": "ship",
    "기계": "machinery",
    "공작기계": "machine tool",
    "개발": "development",
    "발전": "development",
    "신용": "credit",
    "상업": "commercial",
    "광업": "mining",
    "공업": "industry",
    "산업": "industry",
    "중공업": "heavy industries",
    "설비": "equipment",
    "종합": "complex",
    "수입": "import",
    "수출": "export",
    "수출입": "export import",
    "국제": "international",
    "화학": "chemical",
    "기술": "technology",
    "경제": "economic",
    "위원회": "committee",
    "총국": "general bureau",
    "보험": "insurance",
    "민족": "national",
    "국가": "national",
    "우주": "space",
    "우주공간": "space",
    "항공": "aviation",
    "원자력": "atomic energy",
    "군수": "munitions",
    "정찰": "reconnaissance",
    "중앙": "central",
    "군사": "military",
    "인민": "peoples",
    "무력": "armed forces",
    "전략": "strategic",
    "로케트": "rocket",
    "로켓": "rocket",
    "국방": "national defense",
    "과학원": "academy of sciences",
    "과학": "science",
    "자연": "natural",
    "선전": "propaganda",
    "선동": "agitation",
    "조직": "organization",
    "지도": "guidance",
    "창작사": "art studio",
    "해외": "overseas",
    "해외개발": "overseas project",
    "그룹": "group",
    "건설": "construction",
    "콤퓨터": "computer",
    "컴퓨터": "computer",
    "쎈터": "center",
    "센터": "center",
    "통일": "united",
    "수산": "fishery",
    "조선소": "shipyard",
    "상사": "trading",
    "전자": "electronics",
    "철강": "steel",
    "석유": "oil",
    "에네르기": "energy",
    "에너지": "energy",
    "물류": "logistics",
    "운송": "transport",
    "관리": "management",
    "호실": "office",
    "동방": "east",
    "아연": "zinc",
    "시멘트": "cement",
    "일보": "daily",
    "내화": "refractories",
    "제일": "first",
    "제이": "second",
    "성": "ministry",
    "부": "department",
    "국": "bureau",
    "군": "force",
    "원": "academy",
}
_ORDINALS = {"1": "first", "2": "second", "3": "third"}
_ORDINAL = re.compile(r"제\s*([1-9])(?!\d)")
# Readings where the romanised word is also what listings write (names of places and the like).
_KEEP_ROMANISED = frozenset({"동방"})

FAMILY_NAMES: dict[str, str] = {
    "김": "Kim", "리": "Ri", "이": "Ri", "박": "Pak", "최": "Choe", "정": "Jong", "조": "Jo", "강": "Kang",
    "윤": "Yun", "장": "Jang", "한": "Han", "오": "O", "서": "So", "신": "Sin", "권": "Kwon", "황": "Hwang",
    "안": "An", "송": "Song", "류": "Ryu", "유": "Yu", "홍": "Hong", "전": "Jon", "고": "Ko", "문": "Mun",
    "손": "Son", "양": "Yang", "배": "Pae", "백": "Paek", "허": "Ho", "남": "Nam", "심": "Sim", "로": "Ro",
    "노": "No", "하": "Ha", "곽": "Kwak", "성": "Song", "차": "Cha", "주": "Ju", "우": "U", "구": "Ku",
    "민": "Min", "라": "Ra", "나": "Na", "진": "Jin", "지": "Ji", "엄": "Om", "채": "Chae", "원": "Won",
    "천": "Chon", "방": "Pang", "공": "Kong", "현": "Hyon", "함": "Ham", "변": "Pyon", "렴": "Ryom",
    "염": "Yom", "려": "Ryo", "여": "Yo", "추": "Chu", "도": "To", "소": "So", "석": "Sok", "선": "Son",
    "설": "Sol", "마": "Ma", "길": "Kil", "련": "Ryon", "연": "Yon", "위": "Wi", "표": "Pyo", "명": "Myong",
    "기": "Ki", "반": "Pan", "왕": "Wang", "금": "Kum", "옥": "Ok", "육": "Yuk", "인": "In", "맹": "Maeng",
    "제": "Je", "모": "Mo", "탁": "Thak", "국": "Kuk", "용": "Yong", "태": "Thae", "림": "Rim", "임": "Rim",
    "룡": "Ryong", "편": "Phyon", "봉": "Pong", "경": "Kyong", "예": "Ye", "동": "Tong", "계": "Kye",
}  # fmt: skip


def _segments(run: str) -> list[tuple[str, bool]]:
    """A Hangul run split at known words, longest first: (part, known)."""
    parts: list[tuple[str, bool]] = []
    unknown = ""
    i, n = 0, len(run)
    if run.startswith("조선") and n > 3:  # Korea first, whatever follows (조선|소백수, not 조선소|백수)
        parts.append(("조선", True))
        i = 2
    while i < n:
        found = ""
        for size in range(min(5, n - i), 0, -1):
            piece = run[i : i + size]
            if piece in WORDS and (size > 1 or i + size == n):
                found = piece
                break
        if found:
            if unknown:
                parts.append((unknown, False))
                unknown = ""
            parts.append((found, True))
            i += len(found)
        else:
            unknown += run[i]
            i += 1
    if unknown:
        parts.append((unknown, False))
    return parts


def _word(part: str, known: bool, at_end: bool, translate: bool, pronounced: bool) -> str:
    if not known:
        return romanise(part, pronounced) if has_hangul(part) else part
    if part not in WORDS:  # an ordinal already in English
        return part
    if part == "조선" and at_end:
        return "shipbuilding" if translate else romanise(part, pronounced)
    if translate and part not in _KEEP_ROMANISED:
        return WORDS[part]
    return romanise(part, pronounced)


def person_reading(run: str) -> str | None:
    """김정은 -> ``Kim Jong Un``: a family name and one to three syllables, no word of a company."""
    if not 2 <= len(run) <= 4 or not all(is_hangul(c) for c in run) or run[0] not in FAMILY_NAMES:
        return None
    if any(known and len(part) > 1 for part, known in _segments(run[1:])):
        return None
    given = " ".join(romanise(c).capitalize() for c in run[1:])
    return f"{FAMILY_NAMES[run[0]]} {given}"


@lru_cache(maxsize=16_384)
def readings(text: str) -> tuple[str, ...]:
    """The Latin names a Hangul name may be listed under (see the module's notes), best first."""
    text = _ORDINAL.sub(lambda m: f" {_ORDINALS.get(m.group(1), m.group(1))} ", text)
    runs = re.findall(r"[\uac00-\ud7a3]+|[^\s\uac00-\ud7a3]+", text)
    if not runs:
        return ()
    out: list[str] = []
    hangul_runs = [r for r in runs if has_hangul(r)]
    if len(hangul_runs) == 1 and len(runs) == 1 and (person := person_reading(runs[0])) is not None:
        return (person,)  # a person's name is read as one: its syllables are no words of a company
    for translate, pronounced in ((True, False), (False, False), (True, True), (False, True)):
        words: list[str] = []
        for run in runs:
            if not has_hangul(run):
                words.append(run)
                continue
            parts = _segments(run)
            for k, (part, known) in enumerate(parts):
                words.append(_word(part, known, k == len(parts) - 1 and k > 0, translate, pronounced))
        reading = " ".join(w for w in words if w)
        if reading not in out:
            out.append(reading)
    return tuple(out)


# ---------------------------------------------------------------- Chinese characters in Korean

# Chinese words whose Korean equivalent is another word (信贷 is 신용 in a bank's name).
_HAN_WORDS = {
    "信贷": "신용",
    "原子能": "원자력",
    "第二": "제2",
    "第一": "제1",
    "公司": "회사",
    "会社": "회사",
    "总公司": "총회사",
    "总会社": "총회사",
    "有限公司": "회사",
    "侦察": "정찰",
    "宇宙": "우주",
    "劳动党": "로동당",
}
# Sino-Korean readings of the characters of DPRK names and the words of company names
# (simplified forms; traditional ones are folded to them first). 金 is read 금 (gold) in a name of
# a company and 김 as a family name.
_HAN_READINGS = {
    "朝": "조", "鲜": "선", "联": "련", "连": "련", "合": "합", "机": "기", "械": "계", "贸": "무", "易": "역", "会": "회",
    "社": "사", "长": "장", "安": "안", "海": "해", "技": "기", "术": "술", "华": "화", "信": "신", "船": "선", "务": "무",
    "香": "향", "港": "항", "沈": "심", "忠": "충", "国": "국", "际": "제", "运": "운", "矿": "광", "业": "업", "开": "개",
    "发": "발", "大": "대", "同": "동", "银": "은", "行": "행", "清": "청", "川": "천", "江": "강", "光": "광", "端": "단",
    "商": "상", "成": "성", "南": "남", "兴": "흥", "进": "진", "金": "금", "龙": "룡", "高": "고", "丽": "려", "万": "만",
    "寿": "수", "台": "대", "外": "외", "创": "창", "作": "작", "总": "총", "局": "국", "经": "경", "济": "제", "委": "위",
    "员": "원", "原": "원", "子": "자", "能": "능", "工": "공", "省": "성", "军": "군", "需": "수", "部": "부", "青": "청",
    "松": "송", "东": "동", "方": "방", "白": "백", "马": "마", "妙": "묘", "山": "산", "正": "정", "恩": "은", "与": "여",
    "崔": "최", "李": "리", "朴": "박", "炳": "병", "哲": "철", "德": "덕", "勋": "훈", "天": "천", "明": "명", "秀": "수",
    "民": "민", "族": "족", "保": "보", "险": "험", "科": "과", "学": "학", "院": "원", "然": "연", "自": "자", "央": "앙",
    "中": "중", "事": "사", "力": "력", "武": "무", "人": "인", "战": "전", "略": "략", "新": "신", "用": "용", "设": "설",
    "备": "비", "输": "수", "入": "입", "出": "출", "口": "구", "化": "화", "日": "일", "报": "보", "韩": "한", "现": "현",
    "代": "대", "宇": "우", "造": "조", "星": "성", "重": "중", "产": "산", "公": "공", "司": "사", "集": "집", "团": "단",
    "检": "검", "查": "사", "通": "통", "一": "일", "二": "이", "三": "삼", "男": "남", "平": "평", "壤": "양", "咸": "함",
    "镜": "경", "元": "원", "罗": "라", "先": "선", "峰": "봉", "岭": "령", "津": "진", "义": "의", "州": "주", "惠": "혜",
    "尔": "이", "泰": "태", "宝": "보", "石": "석", "油": "유", "钢": "강", "铁": "철", "电": "전", "物": "물", "流": "류",
    "管": "관", "理": "리", "建": "건", "水": "수", "统": "통", "展": "전", "育": "육", "风": "풍", "世": "세", "界": "계",
    "远": "원", "洋": "양", "尾": "미", "浦": "포", "峡": "협", "边": "변", "境": "경", "珲": "훈", "春": "춘", "辽": "료",
    "宁": "녕", "上": "상", "丹": "단", "源": "원", "鸿": "홍", "祥": "상", "实": "실", "汽": "기", "车": "차", "亚": "아",
    "洲": "주", "桥": "교",
}  # fmt: skip
_HAN_FAMILY = {"金": "김", "李": "리"}


@lru_cache(maxsize=16_384)
def korean_reading(text: str, person: bool = False) -> str | None:
    """Chinese characters read in Korean (大同信贷银行 -> 대동신용은행); None when a character has
    no reading in the table (the name is then not read at all rather than half)."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        for size in (3, 2):
            piece = text[i : i + size]
            if piece in _HAN_WORDS:
                out.append(_HAN_WORDS[piece])
                i += size
                break
        else:
            char = text[i]
            if not is_cjk(char):
                out.append(char)
            elif person and i == 0 and char in _HAN_FAMILY:
                out.append(_HAN_FAMILY[char])
            elif char in _HAN_READINGS:
                out.append(_HAN_READINGS[char])
            else:
                return None
            i += 1
    return "".join(out)
