"""Market-day rules as written on market notices (逢农历三、八, 逢双日, ...) and the dates they give.

Accepted forms (full-width digits and punctuation are fine):

- ``逢农历三、八`` / ``逢阴历三、八``: every lunar day whose number ends in 3 or 8
  (初三, 初八, 十三, 十八, 廿三, 廿八). Leap months (e.g. 2025's 闰六月) count like any
  other month.
- ``逢公历一、六`` / ``逢阳历一、六`` / ``逢新历一、六``: every Gregorian day whose number
  ends in 1 or 6 (1, 6, 11, 16, 21, 26, 31).
- **No calendar named means lunar** (``逢一、六`` = ``逢农历一、六``): that is the
  rural custom for 集市.
- Digits may be Chinese (一..九, 十) or Arabic (1..9, 0 or 10), separated by
  、 ， , ; or spaces, or run together in the ``逢三六九`` style. ``逢三逢八`` works
  too. The leading 逢 and a trailing 日/号 are optional. Runs of Arabic digits
  such as ``逢36`` are refused as ambiguous; write ``逢3、6``.
- ``十`` (or 0/10) means day numbers ending in 0: 10, 20 and 30. A lunar month
  has 29 or 30 days, so in a 29-day month there is simply **no** 三十 market
  (it is *not* moved to 廿九). Likewise a Gregorian rule ending in 1 holds on
  the 31st only in 31-day months, and one ending in 0 has no 30th in February.
- ``逢单日`` / ``逢双日``: Gregorian day of month odd / even (so 31 and 1 are two
  market days in a row). Here, as an exception, no calendar named means
  Gregorian; write ``逢农历单日`` for lunar day numbers.
- Explicit dates: ISO dates separated as above, e.g. ``2026-12-05, 2026-12-20``.
  Month-day forms such as 12月5日 are not accepted because they lack a year.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from typing import Literal

from borax.calendars.lunardate import MAX_SOLAR_DATE, MIN_SOLAR_DATE, LunarDate

from outreach.dates import days
from outreach.errors import MarketRuleError

__all__ = ["Calendar", "MarketRule", "parse_rule", "lunar_day", "lunar_label", "has_lunar_date", "ACCEPTED_FORMS"]

Calendar = Literal["lunar", "gregorian"]

ACCEPTED_FORMS = (
    "逢农历三、八 或 逢公历一、六（日子的末位数字，十 = 10、20、30，不写历法即为农历）、"
    "逢三六九、逢单日 / 逢双日（公历），或直接列出日期，如 2026-12-05, 2026-12-20"
)

_SEP = re.compile(r"[、,;\s/]+")
_ISO = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")
_LUNAR_WORDS = ("农历", "阴历", "旧历")
_GREGORIAN_WORDS = ("公历", "阳历", "新历")
_DIGITS = {
    "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9,
    "十": 0, "〇": 0, "零": 0,
    "1": 1, "2": 2, "3": 3, "4": 4, "5": 5, "6": 6, "7": 7, "8": 8, "9": 9, "0": 0,
}


def lunar_day(day: date) -> int:
    """The lunar day number (1..30) of a Gregorian date, leap months included.

    Raises MarketRuleError outside the range borax covers (1900-01-31..2101-01-28).
    """
    return _lunar(day).day


def lunar_label(day: date) -> str:
    """The lunar month and day in Chinese, e.g. 闰六月初三 for 2025-07-27."""
    return _lunar(day).cn_md


def has_lunar_date(day: date) -> bool:
    """Whether the lunar calendar (borax) covers `day`; a Gregorian rule works on any date."""
    return MIN_SOLAR_DATE <= day <= MAX_SOLAR_DATE


def _lunar(day: date) -> LunarDate:
    if not MIN_SOLAR_DATE <= day <= MAX_SOLAR_DATE:
        raise MarketRuleError(
            f"{day.isoformat()}：农历只能查到 {MIN_SOLAR_DATE} 至 {MAX_SOLAR_DATE} 之间的日期；"
            "请选这个范围内的日期"
        )
    return LunarDate.from_solar(day)


@dataclass(frozen=True)
class MarketRule:
    """A parsed market-day rule. Build one with parse_rule()."""

    text: str
    calendar: Calendar
    endings: frozenset[int] = frozenset()  # last digit of the day number; 0 means 10/20/30
    parity: Literal["odd", "even"] | None = None
    explicit: frozenset[date] = frozenset()

    def __str__(self) -> str:
        return self.text

    def matches(self, day: date) -> bool:
        """True if a market is held on `day` under this rule."""
        if self.explicit:
            return day in self.explicit
        number = lunar_day(day) if self.calendar == "lunar" else day.day
        if self.parity is not None:
            return number % 2 == (1 if self.parity == "odd" else 0)
        return number % 10 in self.endings

    def dates(self, start: date, end: date) -> list[date]:
        """Market dates from `start` to `end`, both included, in order."""
        return [d for d in days(start, end) if self.matches(d)]


def _fail(text: str, why: str) -> MarketRuleError:
    return MarketRuleError(f"集日规则 {text!r}：{why}；可用的写法：{ACCEPTED_FORMS}")


def _explicit(text: str, tokens: list[str]) -> MarketRule:
    found: set[date] = set()
    for token in tokens:
        m = _ISO.fullmatch(token)
        if m is None:
            raise _fail(text, f"{token!r} 不是日期；日期请写成 YYYY-MM-DD")
        try:
            found.add(date(int(m[1]), int(m[2]), int(m[3])))
        except ValueError:
            raise _fail(text, f"{token!r} 不是真实存在的日期") from None
    return MarketRule(text=text, calendar="gregorian", explicit=frozenset(found))


def _endings(text: str, body: str) -> frozenset[int]:
    found: set[int] = set()
    # 逢三逢八 and 逢1日、6日 read like 逢三、八 and 逢1、6.
    body = body.replace("逢", "、").replace("日", "").replace("号", "")
    for token in _SEP.split(body):
        if not token:
            continue
        if token == "10":
            found.add(0)
            continue
        if token.isascii() and token.isdigit() and len(token) > 1:
            if int(token) > 31:
                raise _fail(text, f"{token!r} 不是真实存在的日子；请列出集日的末位数字，如 逢3、8")
            raise _fail(text, f"{token!r} 有歧义；阿拉伯数字请分开写，如 逢3、6")
        number = _chinese_number(token)
        if number is not None:
            what = "不是真实存在的日子" if number > 30 else "是完整的日子，不是末位数字"
            raise _fail(text, f"{token!r}（{number}）{what}；规则列的是集日的末位数字"
                              "（逢三、八 = 3、13、23 和 8、18、28；十 = 10、20、30）")
        for ch in token:
            if ch not in _DIGITS:
                raise _fail(text, f"{ch!r} 不是日子的数字（应为 一..十 或 0..9）")
            found.add(_DIGITS[ch])
    if not found:
        raise _fail(text, "没有写日子的数字")
    return frozenset(found)


def _chinese_number(token: str) -> int | None:
    """The value of a written-out number such as 十五, 二十, 三十一 (a 十 with digits around it), else None."""
    if len(token) < 2 or "十" not in token or token.count("十") > 1:
        return None
    tens, _, ones = token.partition("十")
    if any(ch not in _DIGITS or ch.isascii() for ch in tens + ones) or len(tens) > 1 or len(ones) > 1:
        return None
    return (_DIGITS[tens] if tens else 1) * 10 + (_DIGITS[ones] if ones else 0)


def parse_rule(text: str) -> MarketRule:
    """Parse a market-day rule such as 逢农历三、八 (see the module docstring for all forms).

    Raises MarketRuleError saying which forms are accepted.
    """
    if not isinstance(text, str) or not text.strip():
        raise _fail(str(text), "规则是空的")
    original = text.strip()
    s = unicodedata.normalize("NFKC", original).strip()
    tokens = [t for t in _SEP.split(s) if t]
    if tokens and _ISO.match(tokens[0]):
        return _explicit(original, tokens)

    s = s.removeprefix("逢").strip()
    calendar: Calendar | None = None
    for word in _LUNAR_WORDS + _GREGORIAN_WORDS:
        if s.startswith(word):
            calendar = "lunar" if word in _LUNAR_WORDS else "gregorian"
            s = s[len(word):].strip()
    s = s.removeprefix("每月").removesuffix("日").removesuffix("号").strip()

    if s in ("单", "双"):
        return MarketRule(
            text=original,
            calendar=calendar or "gregorian",
            parity="odd" if s == "单" else "even",
        )
    return MarketRule(text=original, calendar=calendar or "lunar", endings=_endings(original, s))
