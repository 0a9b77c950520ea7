"""Ids made from Chinese titles and 您是不是要找 (outreach/content/names.py)."""

from __future__ import annotations

import re

import pytest

from outreach.content.names import ID_MAX, did_you_mean, make_id, resolve, slug
from outreach.content.script_model import ID_PATTERN
from outreach.errors import RegistryError


@pytest.mark.parametrize(("title", "expected"), [
    ("快递退款", "kuaidi-tuikuan"),
    ("防范电信网络诈骗", "fangfan-dianxin-wangluo-zhapian"),  # dictionary words stay whole
    ("96110反诈专线", "96110-fanzha-zhuanxian"),  # digits are kept
    ("App 防骗：2026", "app-fangpian-2026"),  # Latin letters lower-cased, punctuation separates
    ("ＡＰＰ　防骗", "app-fangpian"),  # full-width letters and spaces as typed by a Chinese IME
    ("绿色出行", "lvse-chuxing"),  # ü as v, so the id stays ASCII
], ids=["refund", "phrases", "digits", "latin", "fullwidth", "u-umlaut"])
def test_an_id_is_the_title_in_pinyin(title: str, expected: str) -> None:
    assert slug(title) == expected
    assert re.fullmatch(ID_PATTERN, expected)


@pytest.mark.parametrize(("title", "reading"), [
    ("银行卡不借人", "yinhang"),  # 行 in 银行 is hang, not xing
    ("重阳节敬老", "chongyang"),  # 重 in 重阳 is chong, not zhong
    ("长江大桥行长", "changjiang-daqiao-hangzhang"),  # 长 and 行 both ways in one title
    ("重要通知", "zhongyao"),
], ids=["hang", "chong", "both-ways", "zhong"])
def test_polyphones_are_read_as_in_their_word(title: str, reading: str) -> None:
    assert slug(title).startswith(reading)


def test_ids_are_unique_short_and_never_empty() -> None:
    taken = {"kuaidi-tuikuan", "kuaidi-tuikuan-2"}
    assert make_id("快递退款", taken, fallback="script") == "kuaidi-tuikuan-3"
    assert make_id("快递退款", set(), fallback="script") == "kuaidi-tuikuan"
    # A title with nothing to spell gets the fallback, made unique the same way.
    assert make_id("！！？", {"script"}, fallback="script") == "script-2"
    long = slug("县公安局提醒广大村民朋友们冬季出行注意交通安全不要酒后驾驶")
    assert 0 < len(long) <= ID_MAX and not long.endswith("-") and re.fullmatch(ID_PATTERN, long)


def test_did_you_mean_finds_close_ids_and_names() -> None:
    names = {"fraud-dazhuang-lishu": "大庄镇、梨树乡反诈宣传进村", "winter-traffic": "冬季道路交通安全宣传"}
    assert did_you_mean("fraud-dazhung-lishu", names) == "您是不是要找：大庄镇、梨树乡反诈宣传进村（fraud-dazhuang-lishu）？"
    assert "winter-traffic" in did_you_mean("冬季道路交通宣传", names)
    assert did_you_mean("nope", names) == ""


def test_resolve_takes_an_id_or_a_unique_name() -> None:
    names = {"a-1": "大庄村", "b-1": "大庄村", "c-1": "李家洼村"}
    assert resolve("村", names, "李家洼村", "") == "c-1"
    assert resolve("村", names, " c-1 ", "") == "c-1"
    with pytest.raises(RegistryError, match="有 2 个村叫“大庄村”：a-1、b-1；请写编号"):
        resolve("村", names, "大庄村", "", RegistryError)
    with pytest.raises(RegistryError, match=r"未知的村“李家洼”；您是不是要找：李家洼村（c-1）？运行 `x` 查看"):
        resolve("村", names, "李家洼", "运行 `x` 查看", RegistryError)
