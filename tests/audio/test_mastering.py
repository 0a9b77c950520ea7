"""Mastering for horn loudspeakers, measured on real decoded MP3 audio."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import numpy as np
import pytest
from mutagen.mp3 import MP3

from outreach.audio.ffmpeg import AudioSegment, Sine, decode_to_pcm
from outreach.audio.mastering import (
    CHIME_BELOW_SPEECH_LU, chime, layout_clip, master_to_mp3, measure, read_tags, segment_lufs,
)
from outreach.config import MasteringProfile
from outreach.errors import AudioError, OutputError

PROFILE = MasteringProfile()
RATE = PROFILE.sample_rate


def tone(freq: float, seconds: float, volume_db: float = -20.0) -> AudioSegment:
    return Sine(freq, sample_rate=RATE).to_audio_segment(duration=int(seconds * 1000), volume=volume_db)


def speechlike(seconds: float, volume_db: float) -> AudioSegment:
    """Bursts of mixed tones with gaps: a loudness-gating test signal with speech's rhythm."""
    out = AudioSegment.silent(duration=0, frame_rate=RATE)
    burst = tone(300, 0.4, volume_db).overlay(tone(1200, 0.4, volume_db - 6)).overlay(tone(2500, 0.4, volume_db - 12))
    while out.duration_seconds < seconds:
        out += burst + AudioSegment.silent(duration=150, frame_rate=RATE)
    return out.set_channels(1).set_sample_width(2)


def spectrum_db(pcm: bytes, freq: float) -> float:
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float64)
    spec = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    bins = np.fft.rfftfreq(len(samples), 1 / RATE)
    band = (bins > freq - 5) & (bins < freq + 5)
    return 20 * np.log10(spec[band].max() + 1e-9)


@pytest.mark.parametrize("level_db", [-40.0, -20.0, -3.0], ids=["quiet-input", "normal-input", "hot-input"])
def test_master_reaches_target_loudness_and_peak(tmp_path: Path, level_db: float) -> None:
    out = tmp_path / "clip.mp3"
    result = master_to_mp3(speechlike(20, level_db), out, PROFILE)
    measured = measure(out)
    assert measured.lufs == pytest.approx(PROFILE.target_lufs, abs=1.0)
    assert measured.true_peak_db <= PROFILE.true_peak_db
    assert measured.duration_s == pytest.approx(20.0, abs=1.0)
    assert result == measured


def test_output_format_is_mono_22k_64kbps_cbr(tmp_path: Path) -> None:
    out = tmp_path / "clip.mp3"
    master_to_mp3(speechlike(8, -20), out, PROFILE, tags={"title": "骑车戴头盔", "topic": "traffic", "script_id": "t1"})
    info = MP3(out).info
    assert (info.sample_rate, info.channels, info.bitrate) == (22050, 1, 64000)
    assert read_tags(out) == {"title": "骑车戴头盔", "topic": "traffic", "script_id": "t1"}
    from mutagen.id3 import ID3

    id3 = ID3(out)
    assert id3.version[:2] == (2, 3), "cheap USB players read ID3v2.3"
    assert (str(id3["TPE1"]), str(id3["TALB"])) == ("公安安全宣传", "交通安全宣传")


def test_band_limit_cuts_rumble_below_horn_band(tmp_path: Path) -> None:
    src = tone(80, 6, -20).overlay(tone(1000, 6, -20))
    out = tmp_path / "clip.mp3"
    master_to_mp3(src, out, PROFILE)
    pcm = decode_to_pcm(out, fmt="mp3", sample_rate=RATE)
    before = spectrum_db(src.raw_data, 1000) - spectrum_db(src.raw_data, 80)
    after = spectrum_db(pcm, 1000) - spectrum_db(pcm, 80)
    assert after - before > 12  # the 80 Hz rumble lost at least 12 dB against speech-band 1 kHz


def test_silence_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "clip.mp3"
    with pytest.raises(AudioError, match="音频没有声音"):
        master_to_mp3(AudioSegment.silent(duration=5000, frame_rate=RATE), out, PROFILE)
    assert list(tmp_path.iterdir()) == []


def test_full_disk_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(src: str, dst: str) -> None:
        Path(dst).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copyfile", disk_full)
    out = tmp_path / "clip.mp3"
    with pytest.raises(OutputError, match="磁盘已满"):
        master_to_mp3(speechlike(5, -20), out, PROFILE)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output_folder_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="not-a-dir"):
        master_to_mp3(speechlike(5, -20), blocker / "clip.mp3", PROFILE)


def test_layout_adds_chime_repeats_and_pauses() -> None:
    speech = tone(440, 3.0)
    clip = layout_clip(speech, repeat=3, pause_s=1.5, with_chime=True)
    assert clip.duration_seconds == pytest.approx(chime(RATE).duration_seconds + 3 * 3.0 + 2 * 1.5, abs=0.01)
    bare = layout_clip(speech, repeat=1, pause_s=1.5, with_chime=False)
    assert bare.duration_seconds == pytest.approx(3.0, abs=0.01)


@pytest.mark.parametrize("level_db", [-30.0, -10.0], ids=["quiet-speech", "loud-speech"])
def test_chime_is_set_under_the_speech_whatever_its_level(level_db: float) -> None:
    speech = speechlike(6, level_db)
    clip = layout_clip(speech, repeat=1, pause_s=1.0, with_chime=True)
    ding = clip[: int(chime(RATE).duration_seconds * 1000)]
    assert segment_lufs(speech) - segment_lufs(ding) == pytest.approx(CHIME_BELOW_SPEECH_LU, abs=0.5)


def test_chime_stays_6_lu_under_the_speech_after_mastering(tmp_path: Path) -> None:
    clip = layout_clip(speechlike(12, -12), repeat=1, pause_s=1.0, with_chime=True, profile=PROFILE)
    out = tmp_path / "clip.mp3"
    master_to_mp3(clip, out, PROFILE)
    pcm = decode_to_pcm(out, fmt="mp3", sample_rate=RATE)
    mastered = AudioSegment(data=pcm, sample_width=2, frame_rate=RATE, channels=1)
    chime_ms = int(chime(RATE).duration_seconds * 1000)
    assert segment_lufs(mastered[chime_ms:]) - segment_lufs(mastered[: chime_ms - 600]) >= 6.0
