"""Recordings as scripts (issue 18): added on the CLI, checked, mastered like TTS clips, sealed by approval."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from benchmark_module import load_benchmark
from outreach.audio.ffmpeg import run_ffmpeg
from outreach.audio.mastering import measure, read_tags
from outreach.audio.recordings import probe_recording
from outreach.audio.render import CHIME_S, plan_clip, render_job, render_library, verified_clip
from outreach.cli import cli
from outreach.config import ENGINE_NAMES, TZ, load_config
from outreach.content.script_model import Script
from outreach.content.scripts import check_content, check_library, load_library
from outreach.content.textnorm import load_lexicon
from outreach.errors import AudioError, ScriptError

PASSWORD = "long-enough-password"
DIALECT_VOICE = "zh-CN-liaoning-XiaobeiNeural"  # a village's own voice: a recording ignores it


def tone(path: Path, *, seconds: float, volume_db: float = -30.0, freq: int = 440, codec: str = "pcm_s16le",
         rate: int = 44100, channels: int = 1) -> Path:
    """A real audio file made by ffmpeg: a sine at `volume_db` (quiet, as a phone records a voice)."""
    run_ffmpeg(["-f", "lavfi", "-i", f"sine=frequency={freq}:duration={seconds}", "-af", f"volume={volume_db}dB",
                "-ar", str(rate), "-ac", str(channels), "-c:a", codec, str(path)], what=str(path))
    return path


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), input=PASSWORD + "\n", catch_exceptions=False)


def script_of(workspace: Path, script_id: str) -> Script:
    config = load_config(workspace)
    return next(s for s in load_library(config.scripts_dir, max_chars=400) if s.id == script_id)


def test_cli_recording_is_mastered_like_tts_and_a_new_one_voids_the_approval(workspace: Path, tmp_path: Path) -> None:
    from outreach.web.auth import USERS_FILE, UserStore  # the accounts `user add` writes

    ws = str(workspace)
    before = script_of(workspace, "traffic-helmet")
    assert before.approved and not before.is_recording
    notice = tone(tmp_path / "通知.wav", seconds=2.0, volume_db=-30)
    added = run("scripts", "add-recording", "traffic-helmet", str(notice), "--by", "张村长", "-w", ws)
    assert added.exit_code == 0, added.output
    assert added.stdout.startswith("已添加录音：traffic-helmet（2 秒），文件 recordings/traffic-helmet-")
    assert "原来的批准已作废" in added.stdout
    script = script_of(workspace, "traffic-helmet")
    assert script.is_recording and script.engine == "recording" and script.text == before.text  # text kept for review
    assert script.recording_path is not None and script.recording_path.read_bytes() == notice.read_bytes()
    assert not script.approved and script.edited_after_approval and script.content_hash != before.content_hash

    # The uploader may not approve it; a reviewer with a password may (here declaring they heard it).
    UserStore(workspace / USERS_FILE).add("王秀兰", "reviewer", PASSWORD, now=datetime(2026, 12, 1, tzinfo=TZ))
    approved = run("scripts", "approve", "traffic-helmet", "--by", "王秀兰", "--password-stdin", "--heard", "-w", ws)
    assert approved.exit_code == 0, approved.output
    script = script_of(workspace, "traffic-helmet")
    assert script.approved and script.approval_hash == script.content_hash

    # Rendered by the same chain: decoded, laid out (chime, repeats, pauses), mastered to the profile.
    config = load_config(workspace)
    report = render_library(config, [script], voices=[DIALECT_VOICE], workers=1)
    assert not report.failures and len(report.results) == 1  # one clip: a recording has no village voices
    [clip] = report.results
    assert clip.engine == "recording" and not clip.cached
    loud = measure(Path(clip.path))
    assert loud.lufs == pytest.approx(config.profile.target_lufs, abs=0.5)  # from -30 dB to the target
    assert loud.true_peak_db <= config.profile.true_peak_db
    expected = CHIME_S + script.repeat * 2.0 + (script.repeat - 1) * config.render.pause_s
    assert loud.duration_s == pytest.approx(expected, abs=0.2)
    assert read_tags(Path(clip.path))["engine"] == "recording"
    assert verified_clip(config, script, DIALECT_VOICE) == verified_clip(config, script) == Path(clip.path)
    assert render_library(config, [script], workers=1).results[0].cached  # keyed by the recording and the profile

    # A new recording (another format) voids the approval; the old file goes, the clip key changes.
    old_file = script.recording_path
    other = tone(tmp_path / "重录.mp3", seconds=3.0, freq=660, codec="libmp3lame")
    again = run("scripts", "add-recording", "traffic-helmet", str(other), "-w", ws)
    assert again.exit_code == 0, again.output
    assert "原来的批准已作废" in again.stdout
    replaced = script_of(workspace, "traffic-helmet")
    assert not replaced.approved and replaced.recording_path.suffix == ".mp3" and not old_file.exists()
    lexicon = load_lexicon(config.lexicon_path)
    assert plan_clip(config, replaced, lexicon).key != plan_clip(config, script, lexicon).key
    same = run("scripts", "add-recording", "traffic-helmet", str(other), "-w", ws)
    assert same.exit_code == 1 and "完全一样，没有改动" in same.stderr


def test_a_recording_replaced_by_hand_is_refused_by_check_and_render(workspace: Path, tmp_path: Path) -> None:
    assert run("scripts", "add-recording", "fraud-96110", str(tone(tmp_path / "a.wav", seconds=1.5)),
               "-w", str(workspace)).exit_code == 0
    script = script_of(workspace, "fraud-96110")
    assert script.recording_path is not None
    tone(script.recording_path, seconds=1.5, freq=880)  # someone copies another file over it
    check = run("scripts", "check", "-w", str(workspace))
    assert check.exit_code == 1
    assert "字段 'recording_sha256'：录音文件 recordings/fraud-96110-" in check.stdout and "重新添加录音" in check.stdout
    config = load_config(workspace)
    with pytest.raises(ScriptError, match="录音文件和稿件记录的校验值不一致"):
        render_job(plan_clip(config, script, load_lexicon(config.lexicon_path)), config)
    # A new recording mends it.
    mend = run("scripts", "add-recording", "fraud-96110", str(tone(tmp_path / "b.m4a", seconds=1.5, codec="aac")),
               "-w", str(workspace))
    assert mend.exit_code == 0, mend.output
    assert not check_library(config.scripts_dir, max_chars=400)[1]


@pytest.mark.parametrize(("name", "make", "words"), [
    ("notice.ogg", lambda p: p.write_bytes(b"OggS"), "不是 MP3、WAV、M4A 录音"),
    ("notice.mp3", lambda p: p.write_text("不是录音", "utf-8"), "无法解码"),
    ("notice.wav", lambda p: tone(p, seconds=0.4), "太短了"),
    ("notice.wav", lambda p: tone(p, seconds=2.0, volume_db=-90), "没有声音"),
], ids=["other-format", "not-audio", "too-short", "silent"])
def test_a_bad_file_is_refused_in_chinese_and_nothing_is_written(workspace: Path, tmp_path: Path, name: str,
                                                                  make, words: str) -> None:
    bad = tmp_path / name
    make(bad)
    path = workspace / "audio_scripts" / "traffic-ebike.md"
    before = path.read_bytes()
    result = run("scripts", "add-recording", "traffic-ebike", str(bad), "-w", str(workspace))
    assert result.exit_code == 1 and result.stderr.startswith("错误：") and words in result.stderr
    assert path.read_bytes() == before and not (workspace / "audio_scripts" / "recordings").exists()


def test_mp3_wav_and_m4a_are_taken_with_their_length(tmp_path: Path) -> None:
    for name, codec in (("a.mp3", "libmp3lame"), ("a.wav", "pcm_s16le"), ("a.m4a", "aac")):
        seconds = probe_recording(tone(tmp_path / name, seconds=2.5, codec=codec, channels=2), name[-3:])
        assert seconds == pytest.approx(2.5, abs=0.1), name
    with pytest.raises(AudioError, match="超过 4 分钟"):
        probe_recording(tone(tmp_path / "long.wav", seconds=241, rate=8000), "wav")


def _front(extra: str, engine: str = "recording") -> str:
    return (f"---\nid: traffic-rec\ntopic: traffic\ntitle: 录音\nengine: {engine}\nrepeat: 1\npriority: 5\n"
            f"status: draft\n{extra}---\n乡亲们请注意，这是一段录音的文字稿。\n")


@pytest.mark.parametrize(("engine", "extra", "field", "words"), [
    ("neural", "recording_sha256: " + "a" * 64 + "\n", "recording_sha256", "只有 engine: recording 的稿件才有录音"),
    ("recording", "", "recording_sha256", "录音的校验值缺失或无效"),
    ("recording", "voice: baker\nrecording: recordings/traffic-rec-aaaaaaaaaaaa.wav\nrecording_sha256: " + "a" * 64 + "\n",
     "voice", "不用音色和语速"),
    ("recording", "recording: recordings/other-aaaaaaaaaaaa.wav\nrecording_sha256: " + "a" * 64 + "\n",
     "recording", "不是这篇稿件的录音文件名"),
    ("recording", "recording: recordings/traffic-rec-aaaaaaaaaaaa.wav\nrecording_sha256: " + "a" * 64 + "\n",
     "recording", "找不到录音文件"),
], ids=["tts-with-recording", "no-checksum", "voice", "other-name", "missing-file"])
def test_recording_fields_are_checked(tmp_path: Path, engine: str, extra: str, field: str, words: str) -> None:
    script, problems, _ = check_content(tmp_path / "traffic-rec.md", _front(extra, engine), 400)
    assert script is None and any(p.field == field and words in p.message for p in problems), problems


def test_the_intelligibility_test_skips_recordings_and_says_why() -> None:
    bench = load_benchmark("intelligibility")
    clips = {"traffic-helmet": {"engine": "neural"}, "notice-dialect": {"engine": "recording"}}
    scored, skipped = bench.transcribable(clips)
    assert set(scored) == {"traffic-helmet"}
    assert skipped == {"notice-dialect": bench.RECORDING_SKIP} and "reviewer" in bench.RECORDING_SKIP


def test_outreach_voices_stays_the_tts_voices(workspace: Path) -> None:
    listed = json.loads(run("voices", "--json", "-w", str(workspace)).stdout)
    assert listed and all(v["engine"] in ENGINE_NAMES for v in listed)
