"""Loading and validating campaigns.yaml; target villages; the real sample loads."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pytest

from outreach.errors import CampaignError
from outreach.planning.campaigns import Campaign, Targets, load_campaigns


@dataclass(frozen=True)
class FakeVillage:
    id: str
    township_id: str


@dataclass(frozen=True)
class FakeScript:
    id: str
    status: str = "approved"
    edited_after_approval: bool = False

    @property
    def approved(self) -> bool:
        return self.status == "approved"


@dataclass
class FakeRegistry:
    villages: dict[str, FakeVillage] = field(default_factory=lambda: {
        f"{t}-{i:02d}": FakeVillage(f"{t}-{i:02d}", t) for t in ("dazhuang", "lishu", "hexi") for i in range(1, 4)})
    townships: dict[str, str] = field(default_factory=lambda: {t: t for t in ("dazhuang", "lishu", "hexi")})
    markets: dict[str, set[str]] = field(default_factory=lambda: {
        "lishu-ji": {"lishu-01", "lishu-02", "hexi-03"}, "county-ji": {"dazhuang-01"}})

    def market_villages(self, market_id: str) -> set[str]:
        return self.markets[market_id]


REG = FakeRegistry()
SCRIPTS = {s.id: s for s in [FakeScript("traffic-helmet"), FakeScript("fraud-96110"),
                             FakeScript("fraud-draft", status="draft")]}

GOOD = """\
campaigns:
  - id: winter-traffic      # 编号
    name: 冬季交通安全       # 名称
    scripts: [traffic-helmet]
    from: 2026-12-01
    to: 2027-02-28
    targets: {county: true}
    priority: 6
  - id: fraud-lishu
    name: 梨树反诈
    scripts: [fraud-96110]
    from: 2026-12-01
    to: 2026-12-31
    targets:
      townships: [lishu]
      markets: [county-ji]
    plays_per_slot: 2
    market_day_boost: 1
  - id: always
    name: 常态宣传
    scripts: [traffic-helmet, fraud-96110]
    from: 2026-01-01
    to: 2027-12-31
    targets: {county: true}
    default: true
"""


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "campaigns.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, text: str | bytes) -> list[Campaign]:
    return load_campaigns(write(tmp_path, text), REG, SCRIPTS)


def error(tmp_path: Path, text: str | bytes) -> str:
    with pytest.raises(CampaignError) as info:
        load(tmp_path, text)
    return str(info.value)


def test_good_file_loads_with_aliases_and_defaults(tmp_path):
    winter, fraud, always = load(tmp_path, GOOD)
    assert winter.start == date(2026, 12, 1) and winter.end == date(2027, 2, 28)
    assert (winter.plays_per_slot, winter.priority, winter.market_day_boost, winter.urgent) == (1, 6, 0, False)
    assert fraud.plays_per_slot == 2 and fraud.targets.townships == ["lishu"]
    assert always.default and not winter.default
    assert winter.active_on(date(2027, 2, 28)) and not winter.active_on(date(2027, 3, 1))


def test_target_villages():
    c = Campaign(id="x", name="x", scripts=["traffic-helmet"], start=date(2026, 1, 1), end=date(2026, 1, 2),
                 targets=Targets(townships=["hexi"], villages=["dazhuang-02"], markets=["lishu-ji"]))
    assert c.target_villages(REG) == {"hexi-01", "hexi-02", "hexi-03", "dazhuang-02", "lishu-01", "lishu-02"}
    county = c.model_copy(update={"targets": Targets(county=True)})
    assert county.target_villages(REG) == set(REG.villages)


def test_every_problem_is_listed_with_file_id_field_and_fix(tmp_path):
    bad = GOOD.replace("targets: {county: true}\n    priority: 6",
                       "targets: {villages: [dazhuang-99], townships: [nowhere], markets: [moon-ji]}\n"
                       "    priority: 6") \
              .replace("scripts: [fraud-96110]", "scripts: [fraud-96110, fraud-draft, fraud-ghost]") \
              .replace("to: 2026-12-31", "to: 2026-11-01")
    msg = error(tmp_path, bad)
    path = str(tmp_path / "campaigns.yaml")
    expected = [
        ("winter-traffic", "targets.villages", "未知的村 'dazhuang-99'；您是不是要找：dazhuang-03、dazhuang-02、"
                                               "dazhuang-01？请使用 schedules/ 县名录里的编号"),
        ("winter-traffic", "targets.townships", "未知的乡镇 'nowhere'"),
        ("winter-traffic", "targets.markets", "未知的集市 'moon-ji'"),
        ("fraud-lishu", "scripts", "广播稿 'fraud-draft' 还没有批准（状态 draft）；请先批准"),
        ("fraud-lishu", "scripts", "未知的广播稿 'fraud-ghost'；您是不是要找：fraud-draft、fraud-96110？"
                                   "请使用 audio_scripts/ 里的编号"),
        ("fraud-lishu", "to", "'to' 2026-11-01 早于 'from' 2026-12-01；请对调或改正日期"),
    ]
    lines = msg.splitlines()
    assert lines[0] == f"{path}: 宣传活动有 {len(expected)} 处问题："
    for cid, fld, text in expected:
        assert any(path in ln and f"宣传活动 '{cid}'，字段 '{fld}'：{text}" in ln
                   for ln in lines), (cid, fld, text, msg)
    assert f"{path}:2: 宣传活动 'winter-traffic'" in msg and f"{path}:9: 宣传活动 'fraud-lishu'" in msg


@pytest.mark.parametrize(("edit", "field", "text"), [
    pytest.param(("plays_per_slot: 2", "plays_per_slot: 0"), "plays_per_slot", "不能小于 1（现在是 0）",
                 id="zero-plays"),
    pytest.param(("priority: 6", "priority: 12"), "priority", "不能大于 9（现在是 12）", id="priority-over-9"),
    pytest.param(("market_day_boost: 1", "market_day_boost: -1"), "market_day_boost", "不能小于 0（现在是 -1）",
                 id="negative-boost"),
    pytest.param(("priority: 6", "priorty: 6"), "priorty", "未知的键；请检查拼写（可用的键：id、name、", id="typo-key"),
    pytest.param(("    name: 梨树反诈\n", ""), "name", "缺少必填项；请补上", id="missing-name"),
    pytest.param(("from: 2026-12-01\n    to: 2026-12-31", "from: 2026-12-01\n    to: someday"), "to",
                 "'someday' 不是日期；请写成 YYYY-MM-DD", id="bad-date"),
    pytest.param(("plays_per_slot: 2", "plays_per_slot: two"), "plays_per_slot", "须为整数（现在是 'two'）",
                 id="not-a-number"),
    pytest.param(("priority: 6", "priority: 6\n    urgent: maybe"),
                 "urgent", "须为 true 或 false（现在是 'maybe'）", id="not-a-bool"),
    pytest.param(("id: fraud-lishu", "id: Fraud_Lishu"), "id", "编号只能用小写字母、数字和 '-'", id="bad-id"),
])
def test_field_errors(tmp_path, edit, field, text):
    msg = error(tmp_path, GOOD.replace(*edit, 1))
    assert f"字段 '{field}'：{text}" in msg, msg


def test_no_default_campaign(tmp_path):
    msg = error(tmp_path, GOOD.replace("    default: true\n", ""))
    assert "字段 'default'：没有默认宣传活动；请给一个常年播放的宣传活动加上 `default: true`" in msg


def test_two_default_campaigns(tmp_path):
    msg = error(tmp_path, GOOD.replace("    priority: 6\n", "    priority: 6\n    default: true\n"))
    assert "有 2 个默认宣传活动（winter-traffic、always）；只能有一个写 `default: true`" in msg


def test_duplicate_campaign_id(tmp_path):
    msg = error(tmp_path, GOOD.replace("id: fraud-lishu", "id: winter-traffic"))
    assert "字段 'id'：编号重复（第一次出现在第 2 行）；请改掉其中一个" in msg


def test_bad_yaml_names_the_line(tmp_path):
    msg = error(tmp_path, GOOD.replace("    scripts: [fraud-96110]", "    scripts: [fraud-96110"))
    assert re.search(r"campaigns\.yaml:\d+:\d+: 不是有效的 YAML：方括号 \[ \] 没有闭合.*；请修正语法", msg), msg


def test_duplicate_key_names_the_line(tmp_path):
    msg = error(tmp_path, GOOD.replace("    priority: 6\n", "    priority: 6\n    priority: 7\n"))
    assert "campaigns.yaml:9: 键 'priority' 写了两次；只保留一个" in msg


def test_impossible_yaml_date(tmp_path):
    msg = error(tmp_path, GOOD.replace("to: 2027-02-28", "to: 2027-02-30"))
    # The message names the file, the campaign's line, the campaign and the key.
    assert f"{tmp_path / 'campaigns.yaml'}:2: 宣传活动 'winter-traffic'，字段 'to'：" \
           "'2027-02-30' 不是真实存在的日期；请检查月和日" in msg


@pytest.mark.parametrize("value, why", [
    pytest.param("1764547200", "数字 1764547200 不是日期；请写成 YYYY-MM-DD", id="unix-seconds"),
    pytest.param("20261201", "数字 20261201 不是日期", id="digits"),
    pytest.param("2026-12-01 06:30:00", "带了时刻；只写日期", id="datetime"),
    pytest.param("2026-12-01 06:30", "'2026-12-01 06:30' 不是日期", id="date-and-clock"),
    pytest.param("'12月1日'", "'12月1日' 不是日期；请写成 YYYY-MM-DD", id="chinese"),
    pytest.param("true", "True 不是日期", id="bool"),
])
def test_dates_must_be_real_dates_written_as_text(tmp_path, value, why):
    """pydantic alone reads `from: 1764547200` as seconds since 1970."""
    msg = error(tmp_path, GOOD.replace("from: 2026-12-01", f"from: {value}", 1))
    assert "宣传活动 'winter-traffic'，字段 'from'：" in msg and why in msg, msg


def test_non_utf8_file(tmp_path):
    msg = error(tmp_path, GOOD.encode("gbk"))
    assert "不是 UTF-8 编码" in msg and "另存为 UTF-8" in msg and "campaigns.yaml" in msg


def test_missing_file_and_wrong_shape(tmp_path):
    with pytest.raises(CampaignError, match="nope.yaml: 文件不存在；请创建它"):
        load_campaigns(tmp_path / "nope.yaml", REG, SCRIPTS)
    assert "顶层须有键 'campaigns:'" in error(tmp_path, "- id: x\n")


def test_real_sample_loads(repo_root):
    """The bundled schedules/campaigns.yaml loads against the real registry and script library."""
    from outreach.config import load_config
    from outreach.content.scripts import load_library
    from outreach.planning.registry import load_registry

    config = load_config(repo_root)
    registry = load_registry(config.schedules_dir)
    scripts = {s.id: s for s in load_library(config.scripts_dir, max_chars=config.render.max_chars)}
    campaigns = load_campaigns(config.schedules_dir / "campaigns.yaml", registry, scripts)
    by_id = {c.id: c for c in campaigns}
    assert sum(c.default for c in campaigns) == 1
    assert any(c.urgent for c in campaigns)
    assert any(c.targets.markets for c in campaigns)
    assert any(c.targets.county and not c.default for c in campaigns)
    assert all(c.target_villages(registry) for c in by_id.values())
