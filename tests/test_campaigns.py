"""Loading and validating campaigns.yaml; target villages; the real sample loads."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pytest

from outreach.campaigns import Campaign, Targets, load_campaigns
from outreach.errors import CampaignError


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
        ("winter-traffic", "targets.villages", "unknown village 'dazhuang-99'"),
        ("winter-traffic", "targets.townships", "unknown township 'nowhere'"),
        ("winter-traffic", "targets.markets", "unknown market 'moon-ji'"),
        ("fraud-lishu", "scripts", "script 'fraud-draft' is not approved"),
        ("fraud-lishu", "scripts", "unknown script 'fraud-ghost'"),
        ("fraud-lishu", "to", "before 'from'"),
    ]
    lines = msg.splitlines()
    assert lines[0] == f"{path}: {len(expected)} problem(s) in campaigns:"
    for cid, fld, text in expected:
        assert any(path in ln and f"campaign '{cid}'" in ln and f"field '{fld}'" in ln and text in ln
                   for ln in lines), (cid, fld, text, msg)
    assert f"{path}:2: campaign 'winter-traffic'" in msg and f"{path}:9: campaign 'fraud-lishu'" in msg


@pytest.mark.parametrize(("edit", "field", "text"), [
    pytest.param(("plays_per_slot: 2", "plays_per_slot: 0"), "plays_per_slot", "greater than or equal to 1",
                 id="zero-plays"),
    pytest.param(("priority: 6", "priority: 12"), "priority", "less than or equal to 9", id="priority-over-9"),
    pytest.param(("market_day_boost: 1", "market_day_boost: -1"), "market_day_boost", "greater than or equal",
                 id="negative-boost"),
    pytest.param(("priority: 6", "priorty: 6"), "priorty", "unknown key", id="typo-key"),
    pytest.param(("    name: 梨树反诈\n", ""), "name", "required key is missing", id="missing-name"),
    pytest.param(("from: 2026-12-01\n    to: 2026-12-31", "from: 2026-12-01\n    to: someday"), "to",
                 "date", id="bad-date"),
])
def test_field_errors(tmp_path, edit, field, text):
    msg = error(tmp_path, GOOD.replace(*edit, 1))
    assert f"field '{field}'" in msg and text in msg


def test_no_default_campaign(tmp_path):
    msg = error(tmp_path, GOOD.replace("    default: true\n", ""))
    assert "field 'default'" in msg and "no default campaign" in msg


def test_two_default_campaigns(tmp_path):
    msg = error(tmp_path, GOOD.replace("    priority: 6\n", "    priority: 6\n    default: true\n"))
    assert "2 default campaigns (winter-traffic, always)" in msg


def test_duplicate_campaign_id(tmp_path):
    msg = error(tmp_path, GOOD.replace("id: fraud-lishu", "id: winter-traffic"))
    assert "field 'id': duplicate id (first at line 2)" in msg


def test_bad_yaml_names_the_line(tmp_path):
    msg = error(tmp_path, GOOD.replace("    scripts: [fraud-96110]", "    scripts: [fraud-96110"))
    assert re.search(r"campaigns\.yaml:\d+:\d+: not valid YAML", msg), msg


def test_duplicate_key_names_the_line(tmp_path):
    msg = error(tmp_path, GOOD.replace("    priority: 6\n", "    priority: 6\n    priority: 7\n"))
    assert "campaigns.yaml:9: key 'priority' is given twice" in msg


def test_impossible_yaml_date(tmp_path):
    msg = error(tmp_path, GOOD.replace("to: 2027-02-28", "to: 2027-02-30"))
    # The message names the file, the campaign's line, the campaign and the key.
    assert f"{tmp_path / 'campaigns.yaml'}:2: campaign 'winter-traffic', field 'to': " \
           "'2027-02-30' is not a real date; check the day and month" in msg


@pytest.mark.parametrize("value, why", [
    pytest.param("1764547200", "the number 1764547200 is not a date; write it as YYYY-MM-DD", id="unix-seconds"),
    pytest.param("20261201", "the number 20261201 is not a date", id="digits"),
    pytest.param("2026-12-01 06:30:00", "has a time of day; write only the date", id="datetime"),
    pytest.param("2026-12-01 06:30", "'2026-12-01 06:30' is not a date", id="date-and-clock"),
    pytest.param("'12月1日'", "'12月1日' is not a date; write it as YYYY-MM-DD", id="chinese"),
    pytest.param("true", "True is not a date", id="bool"),
])
def test_dates_must_be_real_dates_written_as_text(tmp_path, value, why):
    """pydantic alone reads `from: 1764547200` as seconds since 1970."""
    msg = error(tmp_path, GOOD.replace("from: 2026-12-01", f"from: {value}", 1))
    assert f"campaign 'winter-traffic', field 'from': " in msg and why in msg, msg


def test_non_utf8_file(tmp_path):
    msg = error(tmp_path, GOOD.encode("gbk"))
    assert "not UTF-8" in msg and "campaigns.yaml" in msg


def test_missing_file_and_wrong_shape(tmp_path):
    with pytest.raises(CampaignError, match="file not found"):
        load_campaigns(tmp_path / "nope.yaml", REG, SCRIPTS)
    assert "top-level key 'campaigns:'" in error(tmp_path, "- id: x\n")


def test_real_sample_loads(repo_root):
    """The bundled schedules/campaigns.yaml loads against the real registry and script library."""
    from outreach.config import load_config
    from outreach.registry import load_registry
    from outreach.scripts import load_library

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
