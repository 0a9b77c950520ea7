"""Voices per purpose ([render.voices]): urgent scripts and each topic get their own voice when a script names none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from outreach.audio.render import voice_for
from outreach.cli import cli
from outreach.config import load_config
from outreach.content.scripts import load_library
from outreach.errors import ConfigError

CLEAREST = "zh-CN-YunyangNeural"  # edge's news-anchor voice, for the alerts
FRAUD = "zh-CN-XiaoxiaoNeural"
TRAFFIC = "zh-CN-YunxiNeural"


def set_purpose_voices(ws: Path, lines: str) -> None:
    toml = ws / "outreach.toml"
    text = toml.read_text(encoding="utf-8")
    start = text.index("[render.voices]")
    end = text.index("[render.edge]")
    toml.write_text(text[:start] + "[render.voices]\n" + lines + "\n\n" + text[end:], encoding="utf-8")


def test_urgent_scripts_then_topics_choose_the_voice(workspace: Path) -> None:
    set_purpose_voices(workspace, f'urgent = "{CLEAREST}"\nurgent_priority = 8\n'
                                  f'topics = {{ anti_fraud = "{FRAUD}", traffic = "{TRAFFIC}" }}')
    config = load_config(workspace)
    scripts = {s.id: s for s in load_library(config.scripts_dir, max_chars=config.render.max_chars)}
    assert voice_for(config, scripts["fraud-96110"], "edge") == CLEAREST  # priority 9
    assert voice_for(config, scripts["traffic-drunk-driving"], "edge") == CLEAREST  # priority 8
    assert voice_for(config, scripts["fraud-seven-tools"], "edge") == FRAUD  # priority 4
    assert voice_for(config, scripts["traffic-harvest-season"], "edge") == TRAFFIC
    # A script's own voice wins over its purpose's.
    assert scripts["traffic-helmet"].voice == TRAFFIC
    assert voice_for(config, scripts["fraud-antifraud-app"], "edge") == FRAUD == scripts["fraud-antifraud-app"].voice
    # A purpose voice of another engine leaves the engine's configured voice.
    assert voice_for(config, scripts["fraud-96110"], "neural") == "baker"


def test_without_the_setting_every_script_keeps_the_engine_voice(workspace: Path) -> None:
    config = load_config(workspace)
    assert config.render.voices.urgent is None and config.render.voices.topics == {}
    for script in load_library(config.scripts_dir, max_chars=config.render.max_chars):
        if not script.voice:
            assert voice_for(config, script, "edge") == config.render.edge_voice


def test_render_speaks_an_urgent_script_in_its_purpose_voice(workspace: Path) -> None:
    toml = workspace / "outreach.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace('engine = "neural"', 'engine = "espeak"', 1),
                    encoding="utf-8")
    set_purpose_voices(workspace, 'urgent = "cmn+f3"')
    result = CliRunner().invoke(cli, ["render", "--script", "fraud-96110", "--script", "traffic-crossing-road",
                                      "--json", "-w", str(workspace)], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    voices = {}
    for clip in json.loads(result.stdout):
        meta = json.loads(Path(clip["path"]).with_suffix(".json").read_text(encoding="utf-8"))
        voices[meta["script_id"]] = (meta["engine"], meta["voice"])
    assert voices == {"fraud-96110": ("espeak", "cmn+f3"), "traffic-crossing-road": ("espeak", "cmn")}


@pytest.mark.parametrize(("lines", "said"), [
    ('topics = { weather = "cmn" }', "weather"),
    ("urgent_priority = 12", "urgent_priority"),
], ids=["unknown-topic", "priority-out-of-range"])
def test_bad_setting_names_the_key(workspace: Path, lines: str, said: str) -> None:
    set_purpose_voices(workspace, lines)
    with pytest.raises(ConfigError, match=said):
        load_config(workspace)


def test_unknown_purpose_voice_fails_the_render_naming_the_setting(workspace: Path) -> None:
    set_purpose_voices(workspace, 'urgent = "zh-CN-NoSuchNeural"')
    result = CliRunner().invoke(cli, ["render", "--script", "fraud-96110", "-w", str(workspace)])
    assert result.exit_code == 1
    assert "[render.voices]" in result.stderr and "zh-CN-NoSuchNeural" in result.stderr
