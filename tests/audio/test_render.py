"""`outreach render`: every approved script becomes a measured, horn-ready MP3; the cache; bad input."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import edge_tts
import numpy as np
import pytest
from click.testing import CliRunner
from fake_edge_server import FakeEdgeServer, make_tone_mp3
from mutagen.mp3 import MP3

import outreach.audio.render
from outreach.audio.ffmpeg import decode_to_pcm
from outreach.audio.mastering import measure, read_tags
from outreach.audio.render import render_library
from outreach.cli import cli
from outreach.config import ENGINE_NAMES, load_config
from outreach.content.scripts import load_library

JSON_KEYS = {"script_id", "path", "engine", "lufs", "true_peak_db", "duration_s", "cached"}


def add_reviewer(workspace: Path, name: str) -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from outreach.web.auth import USERS_FILE, UserStore

    store = UserStore(workspace / USERS_FILE)
    if store.get(name) is None:
        store.add(name, "reviewer", "long-enough-password", now=datetime.now(ZoneInfo("Asia/Shanghai")))


# `scripts approve` checks the reviewer's password and that the version was heard (issue 18).
APPROVE_CLI = ("--password-stdin", "--heard")
REVIEWER_PASSWORD = "long-enough-password\n"


def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def library(ws: Path):
    config = load_config(ws)
    return config, load_library(config.scripts_dir, max_chars=config.render.max_chars)


def mp3s(ws: Path) -> list[Path]:
    return sorted((ws / "build" / "clips").glob("*.mp3")) if (ws / "build" / "clips").exists() else []


@pytest.mark.slow
def test_every_approved_script_is_mastered_to_spec(rendered_workspace: Path) -> None:
    code, out, _ = run("render", "--json", "-w", str(rendered_workspace))
    assert code == 0
    clips = json.loads(out)
    config, scripts = library(rendered_workspace)
    approved = {s.id: s for s in scripts if s.approved}
    assert {c["script_id"] for c in clips} == set(approved)
    for clip in clips:
        assert set(clip) >= JSON_KEYS
        script, path = approved[clip["script_id"]], Path(clip["path"])
        measured = measure(path)
        assert measured.lufs == pytest.approx(-16.0, abs=1.0), clip
        assert measured.true_peak_db <= -1.5, clip
        # Spoken Mandarin runs at 2.5 to 7 characters a second, each repeat, plus chime and pauses.
        chars = len(re.sub(r"\s", "", script.text))
        low, high = script.repeat * chars / 7.0, script.repeat * chars / 2.5 + 3 + script.repeat * 2
        assert low < measured.duration_s < high, (clip, low, high)
        samples = np.frombuffer(decode_to_pcm(path, fmt="mp3", sample_rate=22050), dtype=np.int16)
        assert np.sqrt(np.mean(samples.astype(np.float64) ** 2)) > 500, "clip is near-silent"
        info = MP3(path).info
        assert (info.sample_rate, info.channels, info.bitrate) == (22050, 1, 64000)
        expected_tags = {"title": script.title, "topic": script.topic, "script_id": script.id, "engine": "neural",
                         "voice": "baker"}
        assert read_tags(path).items() >= expected_tags.items()
        assert clip["engine"] == "neural" and clip["cached"] is True


def _lufs_of(path: Path, start: float, length: float | None) -> float:
    """Integrated loudness of a stretch of an MP3, measured as `measure` does (ebur128)."""
    from outreach.audio.ffmpeg import run_ffmpeg

    cut = ["-ss", f"{start}"] + (["-t", f"{length}"] if length else [])
    proc = run_ffmpeg(["-f", "mp3", *cut, "-i", str(path), "-af", "ebur128", "-f", "null", "-"], what="measure")
    return float(re.findall(r"I:\s+(-?[\d.]+) LUFS", proc.stderr)[-1])


@pytest.mark.slow
def test_chime_sits_at_least_6_lu_under_the_speech(rendered_build: Path) -> None:
    from outreach.audio.mastering import chime

    chime_s = chime(22050).duration_seconds
    for clip in sorted((rendered_build / "clips").glob("*.mp3")):
        chime_lufs = _lufs_of(clip, 0.0, chime_s - 0.6)  # the ding-dong, without its silent tail
        speech_lufs = _lufs_of(clip, chime_s, None)
        assert speech_lufs - chime_lufs >= 6.0, (clip.name, chime_lufs, speech_lufs)


@pytest.mark.slow
def test_rendering_again_gives_identical_bytes(rendered_build: Path, workspace: Path) -> None:
    """A fresh render, in this process and one at a time, matches the pooled session render bit for bit."""
    config, scripts = library(workspace)
    chosen = [s for s in scripts if s.id in ("traffic-helmet", "fraud-96110")]
    report = render_library(config, chosen, workers=1)
    assert not report.failures and len(report.results) == 2
    for result in report.results:
        again = Path(result.path)
        assert again.read_bytes() == (rendered_build / "clips" / again.name).read_bytes(), again.name


def test_script_rate_slows_the_clip_and_is_validated(workspace: Path) -> None:
    target = workspace / "audio_scripts" / "traffic-crossing-road.md"
    original = target.read_text(encoding="utf-8")
    durations = {}
    for rate in (2.5, 5.0):
        target.write_text(original.replace("repeat:", f"rate: {rate}\nrepeat:", 1), encoding="utf-8")
        # An edited script is a draft again until re-approved.
        add_reviewer(workspace, "王秀兰")  # approval needs a known reviewer (issue 11)
        assert run("scripts", "approve", "traffic-crossing-road", "--by", "王秀兰", *APPROVE_CLI, "-w", str(workspace),
                   stdin=REVIEWER_PASSWORD)[0] == 0
        code, out, err = run("render", "--script", "traffic-crossing-road", "--json", "-w", str(workspace))
        assert code == 0, err
        [clip] = json.loads(out)
        durations[rate] = clip["duration_s"]
    assert durations[2.5] > 1.6 * durations[5.0]
    target.write_text(original.replace("repeat:", "rate: 9\nrepeat:", 1), encoding="utf-8")
    code, _, err = run("render", "--script", "traffic-crossing-road", "-w", str(workspace))
    assert code == 1 and "traffic-crossing-road.md" in err and "rate" in err and "2.5" in err


@pytest.mark.slow
def test_warm_rerender_synthesises_nothing(rendered_workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_synthesis(*_a: object, **_k: object) -> None:
        raise AssertionError("an unchanged library must not be synthesised again")

    monkeypatch.setattr(outreach.audio.render, "get_synthesizer", no_synthesis)
    config, scripts = library(rendered_workspace)
    report = render_library(config, scripts)
    assert not report.failures and all(r.cached for r in report.results)


@pytest.mark.slow
def test_changed_text_rerenders_only_that_script(rendered_workspace: Path) -> None:
    target = rendered_workspace / "audio_scripts" / "traffic-helmet.md"
    target.write_text(target.read_text(encoding="utf-8").replace("一定要戴好头盔", "一定要戴好安全头盔"), encoding="utf-8")
    # An edited script is a draft again until re-approved.
    add_reviewer(rendered_workspace, "王秀兰")  # approval needs a known reviewer (issue 11)
    assert run("scripts", "approve", "traffic-helmet", "--by", "王秀兰", *APPROVE_CLI, "-w", str(rendered_workspace),
               stdin=REVIEWER_PASSWORD)[0] == 0
    config, scripts = library(rendered_workspace)
    report = render_library(config, scripts)
    fresh = [r.script_id for r in report.results if not r.cached]
    assert fresh == ["traffic-helmet"]
    assert len(list((rendered_workspace / "build" / "clips").glob("traffic-helmet-*.mp3"))) == 1


def test_draft_scripts_are_not_rendered_for_air(workspace: Path) -> None:
    _, scripts = library(workspace)
    draft = next(s for s in scripts if not s.approved)
    code, _, err = run("render", "--script", draft.id, "-w", str(workspace))
    assert code == 1 and "还是草稿" in err and f"outreach scripts approve {draft.id}" in err
    assert mp3s(workspace) == []


BAD_SCRIPTS = {
    "empty-text": (b"---\nid: bad\ntopic: traffic\ntitle: t\nrepeat: 1\npriority: 5\nstatus: draft\n---\n\n", "text"),
    "unknown-topic": ("---\nid: bad\ntopic: weather\ntitle: t\nrepeat: 1\npriority: 5\nstatus: draft\n---\n乡亲们好。\n"
                      .encode(), "topic"),
    "invalid-yaml": (b"---\nid: bad\ntopic: [traffic\n---\n\xe4\xb9\xa1\n", "yaml"),
    "not-utf8": ("---\nid: bad\ntopic: traffic\ntitle: t\nrepeat: 1\npriority: 5\nstatus: draft\n---\n"
                 .encode() + "乡亲们".encode("gbk"), "utf-8"),
    "too-long": (("---\nid: bad\ntopic: traffic\ntitle: t\nrepeat: 1\npriority: 5\nstatus: draft\n---\n"
                  + "请戴头盔。" * 200).encode(), "text"),
    "unknown-voice": ("---\nid: bad\ntopic: traffic\ntitle: t\nvoice: zh-CN-NobodyNeural\nrepeat: 1\npriority: 5\n"
                      "status: draft\n---\n乡亲们好。\n".encode(), "voice"),
}


@pytest.mark.parametrize("case", list(BAD_SCRIPTS), ids=list(BAD_SCRIPTS))
def test_bad_script_is_named_with_field_and_nothing_is_written(workspace: Path, case: str) -> None:
    data, field = BAD_SCRIPTS[case]
    (workspace / "audio_scripts" / "bad.md").write_bytes(data)
    code, _, err = run("render", "-w", str(workspace))
    assert code == 1
    assert "bad.md" in err and field.lower() in err.lower(), err
    assert mp3s(workspace) == []


def test_read_only_output_is_reported_and_leaves_no_partial_file(workspace: Path) -> None:
    (workspace / "build").write_text("a file where the build folder should be")
    code, _, err = run("render", "--script", "traffic-helmet", "-w", str(workspace))
    assert code == 1 and "traffic-helmet" in err and "build" in err
    assert (workspace / "build").read_text().startswith("a file")


@pytest.fixture
def edge_server(monkeypatch: pytest.MonkeyPatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    with FakeEdgeServer(make_tone_mp3(3.0)) as fake:
        monkeypatch.setattr(edge_tts.communicate, "WSS_URL", fake.wss_url)
        yield fake


def test_edge_engine_renders_through_the_service(workspace: Path, edge_server: FakeEdgeServer) -> None:
    code, out, err = run("render", "--engine", "edge", "--script", "fraud-96110", "--json", "-w", str(workspace))
    assert code == 0, err
    [clip] = json.loads(out)
    assert clip["engine"] == "edge" and clip["cached"] is False
    assert read_tags(Path(clip["path"]))["engine"] == "edge"
    assert measure(Path(clip["path"])).lufs == pytest.approx(-16.0, abs=1.0)
    assert edge_server.requests, "the fake service was never asked"


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"ws://127.0.0.1:{port}/consumer/speech/synthesize/readaloud/edge/v1?TrustedClientToken=x"


def _fast_edge_config(ws: Path, fallback: bool) -> None:
    text = (ws / "outreach.toml").read_text(encoding="utf-8")
    text = text.replace("backoff_s = 1.0", "backoff_s = 0.01").replace("timeout_s = 20", "timeout_s = 2")
    text = text.replace("fallback_to_offline = true", f"fallback_to_offline = {str(fallback).lower()}")
    (ws / "outreach.toml").write_text(text, encoding="utf-8")


def test_unreachable_edge_falls_back_to_offline_and_says_so(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(edge_tts.communicate, "WSS_URL", _closed_port_url())
    _fast_edge_config(workspace, fallback=True)
    code, out, _ = run("render", "--engine", "edge", "--script", "traffic-ebike", "--json", "-w", str(workspace))
    assert code == 0
    [clip] = json.loads(out)
    assert clip["engine"] == "neural"
    assert json.loads(Path(clip["path"]).with_suffix(".json").read_text())["requested_engine"] == "edge"


def test_unreachable_edge_without_fallback_fails_cleanly(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(edge_tts.communicate, "WSS_URL", _closed_port_url())
    _fast_edge_config(workspace, fallback=False)
    code, _, err = run("render", "--engine", "edge", "--script", "traffic-ebike", "-w", str(workspace))
    assert code == 1 and "traffic-ebike" in err
    assert mp3s(workspace) == []
    assert not any(p.stat().st_size == 0 for p in (workspace / "build").rglob("*") if p.is_file())


def test_tn_reads_the_documented_examples(workspace: Path) -> None:
    for text, spoken in [("96110", "九六幺幺零"), ("4.2亿次", "四点二亿次"), ("60%", "百分之六十"),
                         ("2021年3月15日", "二零二一年三月十五日")]:
        code, out, _ = run("tn", text, "-w", str(workspace))
        assert (code, out.strip()) == (0, spoken)


def test_voices_lists_every_engine_with_a_description(workspace: Path) -> None:
    code, out, _ = run("voices", "--json", "-w", str(workspace))
    voices = json.loads(out)
    assert code == 0 and {v["engine"] for v in voices} == set(ENGINE_NAMES)
    assert all(v["description"] for v in voices)
    code, out, _ = run("voices", "-w", str(workspace))
    lines = out.splitlines()
    assert code == 0 and len(lines) == len(voices) + 1
    assert any(line.startswith("* neural  baker") for line in lines)
    assert "默认引擎：neural" in lines[-1]


def test_renamed_config_keys_say_what_to_write(workspace: Path) -> None:
    toml = workspace / "outreach.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace('espeak_voice = "cmn"', 'offline_voice = "cmn"'),
                    encoding="utf-8")
    code, _, err = run("voices", "-w", str(workspace))
    assert code == 1 and "offline_voice" in err and "espeak_voice" in err
