"""Player routing: a village's player wins over its township's, which wins over [deliver] player."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from outreach.config import load_config
from outreach.errors import ConfigError, RegistryError
from outreach.players import check_players, route
from outreach.registry import load_registry

DEFAULT = ["true", "{file}"]


def _with_players(ws: Path) -> None:
    county = ws / "schedules" / "county.yaml"
    text = county.read_text(encoding="utf-8")
    text = text.replace("  - {id: lishu, name: 梨树乡}",
                        '  - {id: lishu, name: 梨树乡, player: ["echo", "lishu-amp", "{file}", "{slot}"]}')
    text = re.sub(r"(- \{id: dazhuang-01, [^}]*speaker: networked)\}",
                  r'\1, player: ["printf", "%s", "{village_name}", "{township}", "{date}", "{file}"]}', text)
    county.write_text(text, encoding="utf-8")


@pytest.fixture
def registry(workspace: Path):
    _with_players(workspace)
    return load_registry(load_config(workspace).schedules_dir)


def test_village_then_township_then_default(registry) -> None:
    day, audio = date(2026, 12, 1), Path("/p/x.mp3")
    assert route(registry, DEFAULT, "dazhuang-01", "morning", day, audio) == [
        "printf", "%s", "大庄村", "dazhuang", "2026-12-01", "/p/x.mp3"]
    lishu = next(v for v in registry.villages.values() if v.township_id == "lishu")
    assert route(registry, DEFAULT, lishu.id, "evening", day, audio) == ["echo", "lishu-amp", "/p/x.mp3", "evening"]
    assert route(registry, DEFAULT, "dazhuang-02", "morning", day, audio) == ["true", "/p/x.mp3"]


def test_a_missing_program_is_named_with_where_it_is_set(workspace: Path) -> None:
    county = workspace / "schedules" / "county.yaml"
    county.write_text(county.read_text(encoding="utf-8").replace(
        "  - {id: hexi, name: 河西镇}", '  - {id: hexi, name: 河西镇, player: ["/opt/none/ipcast", "{file}"]}'),
        encoding="utf-8")
    registry = load_registry(load_config(workspace).schedules_dir)
    hexi = sorted(v.id for v in registry.villages.values() if v.township_id == "hexi")
    with pytest.raises(ConfigError) as err:
        check_players(registry, DEFAULT, sorted(registry.villages))
    assert "找不到播放程序 '/opt/none/ipcast'" in str(err.value)
    assert "乡镇 hexi" in str(err.value) and hexi[0] in str(err.value) and "完整路径" in str(err.value)
    check_players(registry, DEFAULT, [v for v in sorted(registry.villages) if v not in hexi])


def test_a_player_without_file_is_refused_at_load(workspace: Path) -> None:
    county = workspace / "schedules" / "county.yaml"
    county.write_text(county.read_text(encoding="utf-8").replace(
        "  - {id: hexi, name: 河西镇}", '  - {id: hexi, name: 河西镇, player: ["aplay"]}'), encoding="utf-8")
    with pytest.raises(RegistryError) as err:
        load_registry(load_config(workspace).schedules_dir)
    assert "county.yaml:" in str(err.value) and "townships[hexi].player：须在某一项里写上 {file}" in str(err.value)
