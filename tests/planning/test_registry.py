"""Tests for outreach/planning/registry.py: the bundled sample county, look-ups and validation messages."""

from __future__ import annotations

import json
import shutil
from datetime import date, time
from pathlib import Path

import pytest
from click.testing import CliRunner

from outreach.cli import cli
from outreach.errors import RegistryError
from outreach.planning.market_days import MarketRule
from outreach.planning.registry import Registry, load_registry

REPO_ROOT = Path(__file__).resolve().parents[2]
D = date.fromisoformat


@pytest.fixture(scope="module")
def reg() -> Registry:
    return load_registry(REPO_ROOT / "schedules")


@pytest.fixture
def sched(tmp_path: Path) -> Path:
    """A private copy of the bundled schedules/ folder, to break."""
    shutil.copytree(REPO_ROOT / "schedules", tmp_path / "schedules")
    (tmp_path / "outreach.toml").write_text("", encoding="utf-8")  # the folder above is a workspace
    return tmp_path / "schedules"


def edit(sched: Path, name: str, old: str, new: str) -> None:
    path = sched / name
    text = path.read_text(encoding="utf-8")
    assert old in text, f"test setup: {old!r} not in {name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def problems(sched: Path) -> str:
    with pytest.raises(RegistryError) as info:
        load_registry(sched)
    return str(info.value)


# ---- the bundled sample

def test_sample_county_shape(reg: Registry) -> None:
    assert reg.county == "槐川县"
    assert {t.id: t.name for t in reg.townships.values()} == {"dazhuang": "大庄镇", "lishu": "梨树乡", "hexi": "河西镇"}
    assert sorted(reg.villages) == sorted(f"{t}-{i:02d}" for t in ("dazhuang", "lishu", "hexi") for i in range(1, 11))
    assert sorted(reg.markets) == ["county-ji", "dazhuang-ji", "hexi-ji", "lishu-ji"]
    assert all(v.name.endswith("村") and 300 <= v.population <= 3000 for v in reg.villages.values())
    assert all(v.township_id == v.id.split("-")[0] for v in reg.villages.values())
    offline = sum(v.speaker == "offline" for v in reg.villages.values())
    assert 8 <= offline <= 12


def test_sample_markets(reg: Registry) -> None:
    rules = {m.id: (m.name, m.rule.text, m.rule.calendar) for m in reg.markets.values()}
    assert rules == {
        "dazhuang-ji": ("大庄集", "逢农历三、八", "lunar"),
        "lishu-ji": ("梨树集", "逢一、六", "lunar"),
        "hexi-ji": ("河西集", "逢公历五、十", "gregorian"),
        "county-ji": ("县城大集", "逢双日", "gregorian"),
    }
    assert isinstance(reg.markets["dazhuang-ji"].rule, MarketRule)


def test_slots_default_and_overridden(reg: Registry) -> None:
    assert [(s.name, s.start, s.max_minutes) for s in reg.village_slots("lishu-01")] == [
        ("morning", time(6, 30), 10), ("evening", time(18, 30), 10)]
    assert [s.start for s in reg.village_slots("dazhuang-04")] == [time(6, 0), time(18, 30)]
    assert [s.start for s in reg.village_slots("hexi-09")] == [time(7, 0), time(19, 30)]
    assert reg.slots["morning"].start == time(6, 30)  # overrides do not leak into the defaults


def test_blackouts(reg: Registry) -> None:
    # 考研: villages next to exam sites, all slots.
    assert reg.is_blackout("dazhuang-01", D("2026-12-26"), "morning")
    assert reg.is_blackout("hexi-01", D("2026-12-27"), "evening")
    assert not reg.is_blackout("dazhuang-02", D("2026-12-26"), "morning")
    assert not reg.is_blackout("dazhuang-01", D("2026-12-28"), "morning")
    # 高考: a whole township, and two villages in the morning only.
    assert reg.is_blackout("dazhuang-07", D("2027-06-08"), "evening")
    assert reg.is_blackout("hexi-02", D("2027-06-07"), "morning")
    assert not reg.is_blackout("hexi-02", D("2027-06-07"), "evening")
    assert not reg.is_blackout("lishu-01", D("2027-06-07"), "morning")


def test_market_villages(reg: Registry) -> None:
    assert reg.market_villages("dazhuang-ji") == {f"dazhuang-{i:02d}" for i in range(1, 11)}
    assert reg.market_villages("hexi-ji") == {"hexi-01", "hexi-02", "hexi-03", "hexi-05", "hexi-06", "hexi-09"}
    assert {reg.villages[v].township_id for v in reg.market_villages("county-ji")} == {"dazhuang", "lishu"}


def test_market_dates_and_villages_on_a_day(reg: Registry) -> None:
    assert reg.market_dates("dazhuang-ji", D("2026-01-01"), D("2026-01-12")) == [
        D("2026-01-01"), D("2026-01-06"), D("2026-01-11")]
    # 2026-01-06 is 冬月十八 (大庄集) and an even day (县城大集); 梨树集 and 河西集 are not held.
    assert reg.market_villages_on(D("2026-01-06")) == reg.market_villages("dazhuang-ji") | {
        "dazhuang-01", "dazhuang-02", "dazhuang-06", "lishu-01", "lishu-02"}
    # 2026-01-09 is 冬月廿一 (梨树集), odd, not 5/10: only 梨树乡.
    assert reg.market_villages_on(D("2026-01-09")) == {f"lishu-{i:02d}" for i in range(1, 11)}


def test_unknown_ids_in_lookups(reg: Registry) -> None:
    with pytest.raises(RegistryError, match="未知的村编号 'nowhere-01'；请使用 schedules/county.yaml 里的编号"):
        reg.village_slots("nowhere-01")
    with pytest.raises(RegistryError, match="未知的集市编号 'x-ji'；请使用 schedules/markets.yaml 里的编号"):
        reg.market_dates("x-ji", D("2026-01-01"), D("2026-01-02"))


def test_unquoted_times_are_read_as_clock_times(sched: Path) -> None:
    # YAML 1.1 would read an unquoted 18:30 as the base-60 integer 1110.
    edit(sched, "slots.yaml", 'start: "18:30"', "start: 18:30")
    assert load_registry(sched).slots["evening"].start == time(18, 30)


# ---- validation: every message names the file (with line), the key or id, and the fix

# (file, text to replace, replacement, number of problems, parts the message must contain)
BROKEN = [
    ("county.yaml", "township: lishu, population: 520", "township: lishuu, population: 520", 1,
     ["county.yaml:56: villages[lishu-04].township：未知的乡镇编号 'lishuu'；请使用其中一个：dazhuang、lishu、hexi"]),
    ("county.yaml", "{id: hexi-10, name: 红旗村", "{id: hexi-08, name: 红旗村", 1,
     ["county.yaml:83: villages[hexi-08]：编号与第 76 行的重复；每一项的编号都要不同"]),
    ("county.yaml", "{id: hexi, name: 河西镇}", "{id: lishu, name: 河西镇}", 11,  # + its 10 villages
     ["county.yaml:33: townships[lishu]：编号与第 32 行的重复",
      "villages[hexi-01].township：未知的乡镇编号 'hexi'；请使用其中一个：dazhuang、lishu（见"]),
    ("county.yaml", "population: 730", "populaton: 730", 2,
     ["villages[hexi-05].populaton：未知的键；请删除它或检查拼写", "villages[hexi-05].population：缺少此项；请补上"]),
    ("county.yaml", "population: 410, speaker: offline", "population: 410, speaker: usb", 1,
     ["villages[dazhuang-09].speaker：只能是 'networked'、'station' 或 'offline'（现在是 'usb'）"]),
    ("county.yaml", "{id: lishu-09,", "{id: Lishu_09,", 1, ["villages[Lishu_09].id：'Lishu_09' 不是有效的编号"]),
    ("county.yaml", 'slots: {morning: "06:00"}', 'slots: {morning: "18:25"}', 1,
     ["county.yaml:40: villages[dazhuang-04].slots.morning：18:25 开始加 10 分钟，会压到 18:30 开始的晚间时段（evening）"]),
    ("county.yaml", 'slots: {morning: "06:00"}', 'slots: {morning: "19:00"}', 1,
     ["villages[dazhuang-04].slots：早间时段（morning）必须在晚间时段（evening）之前开始（morning 19:00，evening"]),
    ("county.yaml", 'slots: {evening: "19:00"}', 'slots: {evening: "23:55"}', 1,
     ["villages[lishu-07].slots.evening：23:55 开始加 10 分钟，会超过午夜"]),
    ("county.yaml", 'slots: {evening: "19:00"}', 'slots: {noon: "12:00"}', 1,
     ["villages[lishu-07].slots.noon：只能是 'morning' 或 'evening'（现在是 'noon'）"]),
    ("slots.yaml", 'start: "18:30"', 'start: "25:00"', 1,
     ["slots.yaml:18: slots.evening.start：'25:00' 不是时刻；请写成 HH:MM，如 06:30"]),
    ("slots.yaml", 'start: "18:30"', 'start: "06:35"', 1,  # not repeated for every village
     ["slots.yaml:17: slots.morning：06:30 开始加 10 分钟，会压到 06:35 开始的晚间时段（evening）；请提前开始时间，或"]),
    ("slots.yaml", "max_minutes: 10}", "max_minutes: 61}", 1,
     ["slots.yaml:17: slots.morning.max_minutes：不能大于 60（现在是 61）"]),
    ("slots.yaml", "max_minutes: 10}", "max_minutes: 0}", 1,
     ["slots.morning.max_minutes：不能小于 1（现在是 0）"]),
    ("slots.yaml", '  evening: {start: "18:30", max_minutes: 10}\n', "", 1,
     ["slots.yaml:17: slots.evening：缺少此时段；请补上它的 start 和 max_minutes"]),
    ("slots.yaml", "villages: [dazhuang-01, hexi-01]", "villages: [dazhuang-01, hexi-11]", 1,
     ["slots.yaml:21: blackouts[0].villages：未知的村编号 'hexi-11'"]),
    ("slots.yaml", "townships: [dazhuang]", "townships: [dazhuang, xx]", 1,
     ["blackouts[1].townships：未知的乡镇编号 'xx'"]),
    ("slots.yaml", "slots: [morning]", "slots: [noon]", 1,
     ["blackouts[2].slots[0]：只能是 'morning' 或 'evening'"]),
    ("slots.yaml", "dates: [2026-12-26, 2026-12-27]", "dates: [2026-12-26, 2026-12-32]", 1,
     ["blackouts[0].dates[1]：'2026-12-32' 不是真实存在的日期；请检查月和日"]),
    ("markets.yaml", "rule: 逢公历五、十", "rule: 逢公历五、X", 1,
     ["markets.yaml:31: markets[hexi-ji].rule：集日规则 '逢公历五、X'：'X' 不是日子的数字", "可用的写法："]),
    ("markets.yaml", "lishu-02]", "lishu-02, lishu-99]", 1,
     ["markets.yaml:36: markets[county-ji].villages：未知的村编号 'lishu-99'"]),
    ("markets.yaml", "townships: [lishu]", "townships: [lishu, north]", 1,
     ["markets[lishu-ji].townships：未知的乡镇编号 'north'"]),
    ("markets.yaml", "  - id: county-ji", "  - id: hexi-ji", 1, ["markets[hexi-ji]：编号与第 31 行的重复"]),
    ("markets.yaml", "    townships: [dazhuang]\n", "", 1,
     ["markets.yaml:21: markets[dazhuang-ji]：没有服务任何村；请填写 `townships` 或 `villages`"]),
    ("markets.yaml", "markets:", "market:", 2,
     ["markets.yaml: markets：缺少此项；请补上", "markets.yaml:20: market：未知的键；只能是：markets"]),
]


@pytest.mark.parametrize(("name", "old", "new", "count", "expected"), BROKEN,
                         ids=[f"{b[0]}:{b[4][0].split('：')[0].split(': ')[-1]}" for b in BROKEN])
def test_validation_messages(sched: Path, name: str, old: str, new: str, count: int, expected: list[str]) -> None:
    edit(sched, name, old, new)
    message = problems(sched)
    assert message.startswith(f"县名录（{sched}）有 {count} 处问题：\n")
    assert len(message.splitlines()) == count + 1
    for part in expected:
        assert part in message
    for line in message.splitlines()[1:]:
        assert line.startswith(f"  {sched}/"), line  # every problem names its file


def test_every_problem_is_listed_at_once(sched: Path) -> None:
    edit(sched, "county.yaml", "population: 730", "population: 0")
    edit(sched, "markets.yaml", "rule: 逢双日", "rule: 逢双双日")
    edit(sched, "slots.yaml", 'start: "06:30"', 'start: "6.30"')
    lines = problems(sched).splitlines()
    assert lines[0] == f"县名录（{sched}）有 3 处问题："
    assert "county.yaml:73: villages[hexi-05].population" in lines[1]
    assert "markets.yaml:" in lines[2] and "markets[county-ji].rule" in lines[2]
    assert "slots.yaml:" in lines[3] and "slots.morning.start：'6.30' 不是时刻" in lines[3]


def test_invalid_entry_is_not_also_reported_as_unknown(sched: Path) -> None:
    # dazhuang-01 is invalid, but markets and blackouts that name it must not add noise.
    edit(sched, "county.yaml", "population: 2860", "population: many")
    message = problems(sched)
    assert message.startswith("县名录（") and "有 1 处问题" in message
    assert "villages[dazhuang-01].population：须为整数（现在是 'many'）" in message


def test_invalid_yaml_names_file_and_line(sched: Path) -> None:
    path = sched / "county.yaml"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    at = lines.index("townships:\n") + 2
    lines.insert(at, "  - {id: broken, name: [unclosed\n")
    path.write_text("".join(lines), encoding="utf-8")
    message = problems(sched)
    assert f"{path}:{at + 1}: 不是有效的 YAML：" in message or f"{path}:{at + 2}: 不是有效的 YAML：" in message
    assert "方括号 [ ] 没有闭合" in message and "请修正语法" in message


def test_repeated_yaml_key(sched: Path) -> None:
    edit(sched, "markets.yaml", "    name: 大庄集\n", "    name: 大庄集\n    name: 大集\n")
    message = problems(sched)
    assert "markets.yaml:" in message and "键 'name' 重复了" in message


def test_non_utf8_file(sched: Path) -> None:
    path = sched / "slots.yaml"
    path.write_bytes(path.read_text(encoding="utf-8").encode("gbk"))
    message = problems(sched)
    assert f"{path}:1: 字节 0x" in message and "不是 UTF-8 编码；请把文件另存为 UTF-8" in message


def test_missing_files(sched: Path) -> None:
    (sched / "markets.yaml").unlink()
    (sched / "slots.yaml").unlink()
    message = problems(sched)
    assert message.startswith(f"县名录（{sched}）有 2 处问题：")
    assert f"{sched / 'markets.yaml'}: 文件不存在；请创建它" in message
    assert f"{sched / 'slots.yaml'}: 文件不存在" in message


def test_file_that_is_not_a_mapping(sched: Path) -> None:
    (sched / "county.yaml").write_text("- just\n- a list\n", encoding="utf-8")
    assert "county.yaml: 内容必须是“键: 值”的映射" in problems(sched)


# ---- CLI

def test_cli_registry_json(sched: Path) -> None:
    result = CliRunner().invoke(cli, ["registry", "--json", "-w", str(sched.parent)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["county"], len(data["townships"]), len(data["villages"]), len(data["markets"])) == ("槐川县", 3, 30, 4)
    assert data["villages"][3]["slot_overrides"] == {"morning": "06:00"}
    assert data["markets"][0]["rule"] == "逢农历三、八"


def test_cli_registry_table_and_error(sched: Path) -> None:
    result = CliRunner().invoke(cli, ["registry", "-w", str(sched.parent)])
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == "槐川县：3 个乡镇，30 个村，4 个集市"
    assert result.stdout.splitlines()[5].split() == ["王家庄村(dazhuang-04)", "大庄镇", "960", "联网", "06:00", "18:30"]
    edit(sched, "county.yaml", "township: lishu, population: 520", "township: lishuu, population: 520")
    result = CliRunner().invoke(cli, ["registry", "-w", str(sched.parent)])
    assert result.exit_code == 1
    assert result.stderr.startswith("错误：县名录（") and "有 1 处问题：" in result.stderr
    assert "villages[lishu-04].township：未知的乡镇编号 'lishuu'" in result.stderr
