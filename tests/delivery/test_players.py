"""Player routing: a village's named player wins over its township's, which wins over [deliver] player."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import pytest

from outreach.config import load_config
from outreach.delivery.live.players import check_players, route
from outreach.errors import ConfigError
from outreach.planning.registry import load_registry

DEFAULT = ["true", "{file}"]


def _define(ws: Path, **players: list[str]) -> None:
    """Set [deliver] player to DEFAULT and add named players to outreach.toml's [players]."""
    toml = ws / "outreach.toml"
    text = re.sub(r"(?m)^player = .*$", "player = " + json.dumps(DEFAULT), toml.read_text(encoding="utf-8"))
    lines = "".join(f"{name} = {json.dumps(cmd)}\n" for name, cmd in players.items())
    toml.write_text(text.replace("[players]\n", "[players]\n" + lines), encoding="utf-8")


def _with_players(ws: Path) -> None:
    _define(ws, **{"lishu-amp": ["echo", "lishu-amp", "{file}", "{slot}"],
                   "printf": ["printf", "%s", "{village_name}", "{township}", "{date}", "{file}"]})
    county = ws / "schedules" / "county.yaml"
    text = county.read_text(encoding="utf-8")
    text = text.replace("  - {id: lishu, name: 梨树乡}", "  - {id: lishu, name: 梨树乡, player: lishu-amp}")
    text = re.sub(r"(- \{id: dazhuang-01, [^}]*speaker: networked)\}", r"\1, player: printf}", text)
    county.write_text(text, encoding="utf-8")


@pytest.fixture
def config(workspace: Path):
    _with_players(workspace)
    return load_config(workspace)


@pytest.fixture
def registry(config):
    return load_registry(config.schedules_dir, players=config.players)


def test_village_then_township_then_default(registry, config) -> None:
    day, audio = date(2026, 12, 1), Path("/p/x.mp3")
    assert route(registry, config, "dazhuang-01", "morning", day, audio) == [
        "printf", "%s", "大庄村", "dazhuang", "2026-12-01", "/p/x.mp3"]
    lishu = next(v for v in registry.villages.values() if v.township_id == "lishu")
    assert route(registry, config, lishu.id, "evening", day, audio) == ["echo", "lishu-amp", "/p/x.mp3", "evening"]
    assert route(registry, config, "dazhuang-02", "morning", day, audio) == ["true", "/p/x.mp3"]


def test_a_missing_program_is_named_with_where_it_is_set(workspace: Path) -> None:
    _define(workspace, ipcast=["/opt/none/ipcast", "{file}"])
    county = workspace / "schedules" / "county.yaml"
    county.write_text(county.read_text(encoding="utf-8").replace(
        "  - {id: hexi, name: 河西镇}", "  - {id: hexi, name: 河西镇, player: ipcast}"), encoding="utf-8")
    config = load_config(workspace)
    registry = load_registry(config.schedules_dir, players=config.players)
    hexi = sorted(v.id for v in registry.villages.values() if v.township_id == "hexi")
    with pytest.raises(ConfigError) as err:
        check_players(registry, config, sorted(registry.villages))
    assert "找不到播放程序 '/opt/none/ipcast'" in str(err.value)
    assert "乡镇 hexi" in str(err.value) and hexi[0] in str(err.value) and "完整路径" in str(err.value)
    check_players(registry, config, [v for v in sorted(registry.villages) if v not in hexi])


def test_a_player_without_file_is_refused_at_load(workspace: Path) -> None:
    _define(workspace, aplay=["aplay"])
    with pytest.raises(ConfigError) as err:
        load_config(workspace)
    assert "outreach.toml" in str(err.value) and "players.aplay" in str(err.value)
    assert "须在某一项里写上 {file}" in str(err.value)
