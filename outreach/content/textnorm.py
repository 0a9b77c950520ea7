"""Spoken-form Mandarin: turn a script's written text into exactly what the TTS engine reads.

This module owns number reading (hotlines, quantities, dates, clock times) and the
pronunciation lexicon (``audio_scripts/lexicon.tsv``).

Order of work in :func:`normalize`:

1. Full-width digits ``０-９`` become ASCII; ``％`` becomes ``%``, and ``：``/``．``
   become ``:``/``.`` only between two digits. Chinese punctuation is kept: it drives pauses.
2. Numbers are read, left to right, on the written text (so the lexicon can never hide
   a context word such as 拨打 from these rules):

   - ``2021年`` (four digits before 年) is a year, read digit by digit with 1 as 一:
     二零二一年. Spaces between a number and a CJK character are dropped
     (``2019 年 11月 8日`` -> 二零一九年十一月八日).
   - ``60%`` -> 百分之六十.
   - ``18:30`` -> 十八点三十分, ``7:05`` -> 七点零五分, ``8:00`` -> 八点, ``2:00`` -> 两点.
     Times are read on the 24-hour clock as written; no 早上/下午 is added, because scripts
     usually say it already (早上6:30). A dash between two times reads 到.
   - Any other digit run is either a *code* (read digit by digit, 1 as 幺 and 0 as 零)
     or a *quantity* (read by cn2an as a number). The first rule that applies decides:

     a. a quantity unit right after it (个, 次, 条, 家, 万, 亿, 元, 年, 月, 日, ...; but not
        words in ``NOT_UNITS`` such as 号码, 人工) -> quantity;
     b. a known hotline or service code (``HOTLINES``: 110, 96110, 12381, ...) -> code;
     c. a context word at most three CJK characters before it (拨打, 致电, 号码, 专线,
        热线, 端口, 电话, 来电, ...; see ``CODE_CONTEXT``) -> code;
     d. 11 digits starting 13-19 (a mobile number), a leading zero, or seven or more
        digits -> code;
     e. otherwise -> quantity.

     So ``96110`` -> 九六幺幺零 but ``110家`` -> 一百一十家, and ``拨打 3次`` stays 三次.
     Codes joined by a dash or comma (``0318-1234567``, ``110,120``) pause on ``，``.
   - ``2021-03-15`` is a date; ``3-5天`` -> 三到五天 and ``2023-2025年`` -> 二零二三到二零二五年.
   - ``1,000元`` (thousands commas) is a quantity when not in a code context.
   - Quantities: a bare 2 before a measure word reads 两 (``2个`` -> 两个, ``2万`` -> 两万,
     but ``第2个`` -> 第二个, ``2月`` -> 二月, ``2.5个`` -> 二点五个), and a leading 二 before
     千/万/亿 reads 两 (``2300`` -> 两千三百).
3. The lexicon replaces words with homophone spellings the engine reads right. It runs
   after the number rules and only on text the number rules did not produce, so an entry
   can never change a reading such as 幺幺零. Lexicon words may not contain digits.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import cn2an

from outreach.errors import TextNormError

__all__ = ["HOTLINES", "Lexicon", "load_lexicon", "normalize"]

#: Hotlines and service codes that are read digit by digit even without a context word.
HOTLINES: frozenset[str] = frozenset({
    "110", "119", "120", "122", "12110", "12123", "12306", "12315", "12321",
    "12345", "12348", "12381", "95588", "96110", "10699000",
})

#: Words that announce a number to dial or text.
CODE_CONTEXT: tuple[str, ...] = (
    "拨打", "拨", "致电", "呼叫", "号码", "手机号", "专线", "热线", "端口", "电话",
    "来电", "短信", "报警", "服务号", "微信号", "QQ",
)

#: Words right after a number that make it a quantity (matched as prefixes of the rest).
QUANTITY_UNITS: tuple[str, ...] = tuple("个位名人次条家份款户辆台部件张元块万亿千百"
                                        "年月日号天周岁秒米斤克吨倍项种点折多余") + (
    "小时", "分钟", "公里", "公斤", "%")
#: Words that start with a unit character but follow a code, not a count (96110号码).
NOT_UNITS: tuple[str, ...] = ("号码", "号线", "人工", "人员", "人民", "名片", "家人", "家属", "部门",
                              "点击", "多少", "天气", "种类", "日常")

#: Measure words after which a bare 2 reads 两.
LIANG_UNITS: tuple[str, ...] = tuple("个辆位名人次条家份款户台部件张块元天周岁倍项种起"
                                     "批只头所间座遍句本双套瓶杯斤吨万亿千百点大") + (
    "小时", "分钟", "公里", "公斤", "年")
#: Words that start with a LIANG_UNITS entry but take 二 (2年级 -> 二年级).
LIANG_EXCEPTIONS: tuple[str, ...] = ("年级", "年代", "点钟")

CODE_DIGITS = str.maketrans("0123456789", "零幺二三四五六七八九")
YEAR_DIGITS = str.maketrans("0123456789", "零一二三四五六七八九")
FULLWIDTH_DIGITS = str.maketrans("０１２３４５６７８９％", "0123456789%")

_CJK = r"\u3400-\u9fff"
_HH_MM = r"(?P<{h}>[01]?\d|2[0-4]):(?P<{m}>[0-5]\d)(?![\d:])"
_TOKEN = re.compile(
    r"(?P<year>\d{4})\s*(?=年)"
    r"|(?P<iso_y>\d{4})-(?P<iso_m>0?[1-9]|1[0-2])-(?P<iso_d>0?[1-9]|[12]\d|3[01])(?![\d\-日号])"
    + "|" + _HH_MM.format(h="from_h", m="from_m") + r"[ \t]*[-~～—–至到]+[ \t]*(?=\d{1,2}:\d\d)"
    + "|" + _HH_MM.format(h="hour", m="minute")
    + r"|(?P<percent>\d+(?:\.\d+)?)%"
    + r"|(?P<dashed>\d+(?:[-~～—–]\d+)+)(?![\d.])"
    + r"|(?P<grouped>\d{1,3}(?:,\d{3})+)(?![\d,])"
    + r"|(?P<number>\d+(?:\.\d+)?)"
)
_SPACE_NEAR_NUMBER = re.compile(rf"(?<=[{_CJK}])[ \t\u3000]+(?=\d)|(?<=\d)[ \t\u3000]+(?=[{_CJK}%])")
_CONTEXT_BEFORE = re.compile(
    "(?:" + "|".join(map(re.escape, CODE_CONTEXT)) + rf")[{_CJK}]{{0,3}}[\s:：“”\"'（(]*$"
)


class Lexicon:
    """Words mapped to spoken spellings; :meth:`apply` replaces the longest match first."""

    def __init__(self, entries: Mapping[str, str] | None = None) -> None:
        self._entries: dict[str, str] = dict(entries or {})
        words = sorted(self._entries, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, words))) if words else None

    @property
    def entries(self) -> dict[str, str]:
        """A copy of the word -> spoken mapping."""
        return dict(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, word: object) -> bool:
        return word in self._entries

    def __repr__(self) -> str:
        return f"Lexicon({len(self)} entries)"

    def apply(self, text: str) -> str:
        """Replace every lexicon word in `text`, scanning left to right, longest word first."""
        if self._pattern is None:
            return text
        return self._pattern.sub(lambda m: self._entries[m.group(0)], text)


def load_lexicon(path: Path) -> Lexicon:
    """Read a ``word<TAB>spoken`` file (UTF-8, ``#`` comments, optional ``<TAB># note``).

    A missing file gives an empty Lexicon. Raises TextNormError naming ``file:line`` and
    the fix for an unreadable file or a bad line.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return Lexicon()
    except OSError as exc:
        raise TextNormError(f"{path}: 无法读取读音词表（{exc.strerror}）；"
                            "请检查它是不是一个可读的文件") from exc
    entries: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for lineno, raw_line in enumerate(raw.split(b"\n"), start=1):
        where = f"{path}:{lineno}"
        try:
            line = raw_line.decode("utf-8").removeprefix("\ufeff").rstrip("\r")
        except UnicodeDecodeError:
            raise TextNormError(f"{where}: 不是有效的 UTF-8 编码；请把文件另存为 UTF-8") from None
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) == 3 and fields[2].lstrip().startswith("#"):
            fields = fields[:2]
        if len(fields) != 2:
            found = "没有制表符" if len(fields) == 1 else f"有 {len(fields) - 1} 个制表符"
            raise TextNormError(f"{where}: 格式应为 '词<TAB>读法'，这一行{found}；"
                                "请用一个制表符（Tab）隔开词和它的读法")
        word, spoken = fields[0].strip(), fields[1].strip()
        if not word or not spoken:
            side = "词" if not word else "读法"
            raise TextNormError(f"{where}: {side}是空的；请写成 '词<TAB>读法'")
        for name, value in (("词", word), ("读法", spoken)):
            if re.search(r"\d", value.translate(FULLWIDTH_DIGITS)):
                raise TextNormError(
                    f"{where}: {name} {value!r} 里有数字；数字在查词表之前就按数字规则读出，"
                    "所以词表条目里不要写数字")
        if word == spoken:
            raise TextNormError(f"{where}: {word!r} 的读法和它自己一样；请删掉这一行")
        if word in entries:
            raise TextNormError(f"{where}: {word!r} 已在第 {first_line[word]} 行定义过；只保留一条")
        entries[word] = spoken
        first_line[word] = lineno
    return Lexicon(entries)


def normalize(text: str, lexicon: Lexicon | None = None) -> str:
    """Return the spoken form of `text`: exactly the string the TTS engine is given."""
    text = _widen_digits(text)
    text = _SPACE_NEAR_NUMBER.sub("", text)
    out: list[str] = []
    pos = 0
    for match in _TOKEN.finditer(text):
        out.append(_apply_lexicon(text[pos:match.start()], lexicon))
        out.append(_read_token(match, text))
        pos = match.end()
    out.append(_apply_lexicon(text[pos:], lexicon))
    return "".join(out)


def _apply_lexicon(plain: str, lexicon: Lexicon | None) -> str:
    return lexicon.apply(plain) if lexicon is not None else plain


def _widen_digits(text: str) -> str:
    """Full-width digits and % to ASCII; ： and ． only between digits (else they are pauses)."""
    text = text.translate(FULLWIDTH_DIGITS)
    return re.sub(r"(?<=\d)([：．])(?=\d)", lambda m: ":" if m.group(1) == "：" else ".", text)


def _read_token(match: re.Match[str], text: str) -> str:
    group = match.group
    if group("year"):
        return group("year").translate(YEAR_DIGITS)
    if group("from_h"):
        return _read_time(group("from_h"), group("from_m")) + "到"
    if group("hour"):
        return _read_time(group("hour"), group("minute"))
    if group("percent"):
        return "百分之" + _read_quantity(group("percent"))
    if group("iso_y"):
        month, day = (cn2an.an2cn(str(int(group(g)))) for g in ("iso_m", "iso_d"))
        return f"{group('iso_y').translate(YEAR_DIGITS)}年{month}月{day}日"
    before, after = text[:match.start()], text[match.end():].lstrip()
    if group("dashed"):
        parts = re.split(r"[-~～—–]", group("dashed"))
        if after.startswith("年") and all(len(part) == 4 for part in parts):
            return "到".join(part.translate(YEAR_DIGITS) for part in parts)
        if _is_code(parts[0], before, ""):
            return "，".join(part.translate(CODE_DIGITS) for part in parts)
        if _has_unit(after):
            return "到".join(_read_quantity(part, before, after) for part in parts)
        return "-".join(_read_number(part, before, "") for part in parts)
    if group("grouped"):
        parts = group("grouped").split(",")
        if _CONTEXT_BEFORE.search(before[-16:]) or any(part in HOTLINES for part in parts):
            return "，".join(part.translate(CODE_DIGITS) for part in parts)
        return _read_quantity("".join(parts), before, after)
    return _read_number(group("number"), before, after)


def _read_number(digits: str, before: str, after: str) -> str:
    if _is_code(digits, before, after):
        return digits.translate(CODE_DIGITS)
    return _read_quantity(digits, before, after)


def _is_code(digits: str, before: str, after: str) -> bool:
    """Rules a-e of the module docstring: True when `digits` is dialled, not counted."""
    if "." in digits or _has_unit(after):
        return False
    if digits in HOTLINES or _CONTEXT_BEFORE.search(before[-16:]):
        return True
    is_mobile = len(digits) == 11 and digits[0] == "1" and digits[1] in "3456789"
    return is_mobile or (len(digits) > 1 and digits[0] == "0") or len(digits) >= 7


def _read_quantity(number: str, before: str = "", after: str = "") -> str:
    try:
        spoken = cn2an.an2cn(number)
    except ValueError:  # cn2an reads at most 16 integer digits
        raise TextNormError(f"数字 {number} 太长，无法按数量读出；请改用汉字写，"
                            "或在前面加“号码”等提示词，让它逐位读出") from None
    if number == "2" and not before.endswith("第") and _takes_liang(after):
        return "两"
    if re.match(r"二[千万亿]", spoken):
        spoken = "两" + spoken[1:]
    return spoken


def _has_unit(after: str) -> bool:
    return after.startswith(QUANTITY_UNITS) and not after.startswith(NOT_UNITS)


def _takes_liang(after: str) -> bool:
    return after.startswith(LIANG_UNITS) and not after.startswith(LIANG_EXCEPTIONS)


def _read_time(hour: str, minute: str) -> str:
    spoken = ("两" if int(hour) == 2 else cn2an.an2cn(str(int(hour)))) + "点"
    m = int(minute)
    if m == 0:
        return spoken
    return spoken + ("零" if m < 10 else "") + cn2an.an2cn(str(m)) + "分"
