"""Edge dialect voices per township or village: registry, rendering, program identity, export, fallback."""

from __future__ import annotations

import dataclasses
import json
import socket
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import edge_tts.communicate
import numpy as np
import pytest
from click.testing import CliRunner
from fake_edge_server import FakeEdgeServer, make_tone_mp3

from outreach.audio.ffmpeg import decode_to_pcm
from outreach.audio.mastering import read_tags
from outreach.audio.render import plan_clip, render_library
from outreach.cli import cli
from outreach.config import load_config
from outreach.content.textnorm import load_lexicon
from outreach.delivery.prepare import prepare_programs, program_clips
from outreach.delivery.usb.packs import _audio_offset
from outreach.errors import RegistryError
from outreach.planning.registry import load_registry, village_voice
from outreach.planning.workspace import load, plan_days

LIAONING = "zh-CN-liaoning-XiaobeiNeural"
SHAANXI = "zh-CN-shaanxi-XiaoniNeural"
DIALECT = "hexi-04"  # 沙窝村 in 河西镇, USB-fed
PLAIN = "dazhuang-05"  # 李家洼村 in 大庄镇, USB-fed
TONE_HZ = 1000  # the fake service "speaks" a pure tone, so its audio can be told from the neural voice's
DAY = "2026-12-01"


def set_voice(ws: Path, old: str, voice: str) -> None:
    """Append `voice:` to the flow mapping in county.yaml that starts with `old`."""
    path = ws / "schedules" / "county.yaml"
    text = path.read_text(encoding="utf-8")
    start = text.index(old)
    end = text.index("}", start)
    path.write_text(text[:end] + f", voice: {voice}" + text[end:], encoding="utf-8")


def tone_share(path: Path, hz: int = TONE_HZ) -> float:
    """Fraction of the file's spectral energy within 30 Hz of `hz`."""
    pcm = np.frombuffer(decode_to_pcm(path, fmt="mp3", sample_rate=16000), dtype=np.int16).astype(np.float64)
    power = np.abs(np.fft.rfft(pcm)) ** 2
    freqs = np.fft.rfftfreq(len(pcm), 1 / 16000)
    return float(power[np.abs(freqs - hz) < 30].sum() / power.sum())


@pytest.fixture
def edge_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeEdgeServer]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "WS_PROXY", "WSS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    with FakeEdgeServer(make_tone_mp3(2.0, frequency=TONE_HZ)) as fake:
        monkeypatch.setattr(edge_tts.communicate, "WSS_URL", fake.wss_url)
        yield fake


# --- registry ------------------------------------------------------------------------------


def test_village_voice_wins_over_its_townships(workspace: Path) -> None:
    set_voice(workspace, "{id: hexi, name: 河西镇", LIAONING)
    set_voice(workspace, "{id: hexi-05,", SHAANXI)
    reg = load_registry(workspace / "schedules")
    assert reg.townships["hexi"].voice == LIAONING
    assert village_voice(reg, DIALECT) == LIAONING  # inherited from 河西镇
    assert village_voice(reg, "hexi-05") == SHAANXI  # its own
    assert village_voice(reg, PLAIN) is None  # the library's voice


def test_unknown_voice_names_file_line_key_and_choices(workspace: Path) -> None:
    set_voice(workspace, "{id: hexi, name: 河西镇", "zh-CN-henan-NoSuchNeural")
    set_voice(workspace, "{id: hexi-05,", "sichuanhua")
    with pytest.raises(RegistryError) as info:
        load_registry(workspace / "schedules")
    lines = str(info.value).splitlines()
    assert lines[0].startswith("县名录（") and lines[0].endswith("）有 2 处问题：")
    assert "county.yaml:33: townships[hexi].voice：未知的音色 'zh-CN-henan-NoSuchNeural'" in lines[1]
    assert "villages[hexi-05].voice：未知的音色 'sichuanhua'" in lines[2]
    assert all(LIAONING in line and SHAANXI in line and "outreach voices" in line for line in lines[1:])


def test_programs_carry_the_voice_and_it_is_part_of_their_identity(workspace: Path) -> None:
    set_voice(workspace, "{id: hexi, name: 河西镇", LIAONING)
    loaded = load(load_config(workspace))
    programs = plan_days(loaded, date(2026, 12, 1), date(2026, 12, 1), village_ids=[DIALECT, PLAIN]).programs
    dialect = [p for p in programs if p.village_id == DIALECT]
    plain = [p for p in programs if p.village_id == PLAIN]
    assert dialect and plain
    assert all(p.voice == LIAONING for p in dialect) and all(p.voice is None for p in plain)
    p = dialect[0]
    default = dataclasses.replace(p, voice=None)
    assert default.content_key == tuple(i.script_id for i in p.airable_items)  # unchanged without a voice
    assert p.content_key != default.content_key
    # A dialect clip is its own file beside the default one; the default's name and key are unchanged.
    config, script = loaded.config, loaded.scripts[p.airable_items[0].script_id]
    lexicon = load_lexicon(config.lexicon_path)
    own, base = plan_clip(config, script, lexicon, voice=LIAONING), plan_clip(config, script, lexicon)
    assert (own.engine, own.voice) == ("edge", LIAONING)
    assert own.path.name.startswith(f"{script.id}@{LIAONING}-") and base.path.name.startswith(f"{script.id}-")
    assert own.key != base.key and base == plan_clip(config, script, lexicon, voice=None)


# --- rendering, delivery and export ---------------------------------------------------------


def test_dialect_township_airs_edge_clips_other_villages_keep_neural(
        rendered_workspace: Path, tmp_path: Path, edge_server: FakeEdgeServer) -> None:
    ws = rendered_workspace
    set_voice(ws, "{id: hexi, name: 河西镇", LIAONING)
    out = tmp_path / "usb"
    result = CliRunner().invoke(cli, ["export", "--out", str(out), "--mkdir", "--past", "-w", str(ws), "--date", DAY, "--to", DAY,
                                      "--village", DIALECT, "--village", PLAIN], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert any("XiaobeiNeural" in r.ssml and "liaoning" in r.ssml for r in edge_server.requests)

    loaded = load(load_config(ws))
    programs = plan_days(loaded, date(2026, 12, 1), date(2026, 12, 1), village_ids=[DIALECT, PLAIN]).programs
    for p in programs:
        clips, problems = program_clips(loaded, p)
        assert clips and not problems, problems
        for clip in clips:
            meta = json.loads(clip.with_suffix(".json").read_text(encoding="utf-8"))
            tags = read_tags(clip)
            if p.village_id == DIALECT:
                assert f"@{LIAONING}-" in clip.name
                assert (meta["engine"], meta["voice"], tags["engine"], tags["voice"]) == ("edge", LIAONING,
                                                                                          "edge", LIAONING)
            else:
                assert "@" not in clip.name and (meta["engine"], tags["engine"]) == ("neural", "neural")
        # The same program without the village's voice resolves to the library's clips.
        if p.voice:
            default_clips, _ = program_clips(loaded, dataclasses.replace(p, voice=None))
            assert [c.name.split("-")[0] for c in default_clips] == [c.name.split("@")[0].split("-")[0]
                                                                      for c in clips]
            assert all("@" not in c.name for c in default_clips)
    # Each clip directory holds one clip per (script, voice): both voices of a script are kept.
    some = next(p for p in programs if p.voice).airable_items[0].script_id
    names = sorted(c.name for c in (ws / "build" / "clips").glob(f"{some}[-@]*.mp3"))
    assert len(names) == 2 and sum("@" in n for n in names) == 1, names

    # What the sticks carry: the dialect village hears the edge voice (the tone), the other the neural one.
    def body(path: Path) -> bytes:
        return path.read_bytes()[_audio_offset(path):]

    dialect_files = sorted(out.glob(f"*/{DIALECT}_*/*.mp3"))
    plain_files = sorted(out.glob(f"*/{PLAIN}_*/*.mp3"))
    assert dialect_files and plain_files
    assert not {body(f) for f in dialect_files} & {body(f) for f in plain_files}
    assert min(tone_share(f) for f in dialect_files) > 0.3
    assert max(tone_share(f) for f in plain_files) < 0.05

    # Air: the same script list in the dialect village and a default one makes two different programs.
    d = next(p for p in programs if p.voice)
    twin = dataclasses.replace(d, village_id=PLAIN, township_id="dazhuang", voice=None)
    ready = prepare_programs(loaded, [d, twin])
    a, b = ready[(DIALECT, d.slot, d.date)], ready[(PLAIN, d.slot, d.date)]
    assert a.engine == "edge" and b.engine == "neural"
    assert a.sha256 and b.sha256 and a.sha256 != b.sha256


def test_unreachable_edge_dialect_clip_falls_back_to_neural_and_says_so(
        rendered_workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(edge_tts.communicate, "WSS_URL",
                        f"ws://127.0.0.1:{port}/consumer/speech/synthesize/readaloud/edge/v1?TrustedClientToken=x")
    toml = rendered_workspace / "outreach.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace("backoff_s = 1.0", "backoff_s = 0.01")
                    .replace("timeout_s = 20", "timeout_s = 2"), encoding="utf-8")
    config = load_config(rendered_workspace)
    loaded = load(config)
    script = loaded.scripts["traffic-ebike"]
    report = render_library(config, [script], voices=[LIAONING, None])
    assert not report.failures, report.failures
    default, dialect = sorted(report.results, key=lambda r: "@" in r.path)
    assert default.cached and "@" not in default.path
    assert not dialect.cached and f"@{LIAONING}-" in dialect.path and dialect.engine == "neural"
    meta = json.loads(Path(dialect.path).with_suffix(".json").read_text(encoding="utf-8"))
    assert (meta["engine"], meta["voice"]) == ("neural", "baker")
    assert (meta["requested_engine"], meta["requested_voice"]) == ("edge", LIAONING)
    assert read_tags(Path(dialect.path))["engine"] == "neural"
    # The fallback clip is not trusted as the dialect clip: the next render asks edge again.
    again = render_library(config, [script], voices=[LIAONING])
    assert [r.cached for r in sorted(again.results, key=lambda r: "@" in r.path)] == [True, False]
