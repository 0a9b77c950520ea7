"""The espeak engine renders real Mandarin with espeak-ng and writes WAV atomically."""

from __future__ import annotations

import array
import errno
import math
import os
import wave
from pathlib import Path

import pytest

from outreach.audio.ffmpeg import decode_to_pcm
from outreach.config import RenderSettings
from outreach.errors import OutputError, SynthesisFailed, UnknownVoice
from outreach.tts import (
    EspeakSynthesizer, FallbackSynthesizer, SynthesisResult, Synthesizer, get_synthesizer, list_voices,
)

SHORT = "村民朋友们，请注意防范电信诈骗。"
LONG = SHORT + "不要轻信陌生电话，不要向陌生账户转账。接到可疑电话，请立即拨打一一零报警。"
RATE = 22050


def hanzi_count(text: str) -> int:
    return sum("\u4e00" <= ch <= "\u9fff" for ch in text)


def decode(result: SynthesisResult) -> array.array:
    """Decode with ffmpeg at the file's own rate, as the mastering step will."""
    samples = array.array("h")
    samples.frombytes(decode_to_pcm(result.path, fmt=result.fmt, sample_rate=RATE))
    return samples


def rms(samples: array.array) -> float:
    return math.sqrt(sum(s * s for s in samples) / len(samples))


@pytest.fixture
def synth() -> EspeakSynthesizer:
    return EspeakSynthesizer(RenderSettings())


def test_renders_real_mandarin_wav(synth: EspeakSynthesizer, tmp_path: Path) -> None:
    result = synth.synthesize(SHORT, None, tmp_path / "clip")

    assert result == SynthesisResult(tmp_path / "clip.wav", "wav", "espeak", "cmn")
    with wave.open(str(result.path)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, RATE)
    samples = decode(result)
    seconds = len(samples) / RATE
    # The default rate asks for 3.8 Hanzi a second; espeak-ng keeps to it roughly, pauses included.
    assert 1.5 <= hanzi_count(SHORT) / seconds <= 6
    assert rms(samples) > 500  # speech, not silence


def test_longer_text_gives_longer_audio(synth: EspeakSynthesizer, tmp_path: Path) -> None:
    short = decode(synth.synthesize(SHORT, None, tmp_path / "short"))
    long = decode(synth.synthesize(LONG, None, tmp_path / "long"))
    ratio = len(long) / len(short)
    assert ratio == pytest.approx(hanzi_count(LONG) / hanzi_count(SHORT), rel=0.35)


def test_rate_setting_is_applied(tmp_path: Path) -> None:
    slow = EspeakSynthesizer(RenderSettings(rate=2.5)).synthesize(SHORT, None, tmp_path / "slow")
    fast = EspeakSynthesizer(RenderSettings(rate=6.0)).synthesize(SHORT, None, tmp_path / "fast")
    per_call = EspeakSynthesizer(RenderSettings(rate=2.5)).synthesize(SHORT, None, tmp_path / "call", rate=6.0)
    assert len(decode(slow)) > 1.5 * len(decode(fast))
    assert len(decode(per_call)) == pytest.approx(len(decode(fast)), rel=0.02)


@pytest.mark.parametrize("voice", ["cmn+f3", "cmn+m2"], ids=["catalogue-variant", "espeak-variant"])
def test_voice_variants(synth: EspeakSynthesizer, tmp_path: Path, voice: str) -> None:
    result = synth.synthesize(SHORT, voice, tmp_path / "clip")
    assert result.voice == voice
    assert rms(decode(result)) > 500


@pytest.mark.parametrize("voice", ["zh-CN-XiaoxiaoNeural", "klingon", "cmn+nosuchvariant", "cmn+../../x"])
def test_unknown_voice(synth: EspeakSynthesizer, tmp_path: Path, voice: str) -> None:
    with pytest.raises(UnknownVoice) as info:
        synth.synthesize(SHORT, voice, tmp_path / "clip")
    message = str(info.value)
    assert voice in message and "espeak" in message and "cmn+f3" in message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("text", ["", "   \n\t", "。，！"], ids=["empty", "whitespace", "punctuation"])
def test_nothing_to_speak(synth: EspeakSynthesizer, tmp_path: Path, text: str) -> None:
    with pytest.raises(SynthesisFailed):
        synth.synthesize(text, None, tmp_path / "clip")
    assert list(tmp_path.iterdir()) == []


def test_parent_is_a_file_raises_output_error(synth: EspeakSynthesizer, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(OutputError):
        synth.synthesize(SHORT, None, blocker / "clip")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-folder"]


def test_failed_write_leaves_old_file_and_no_part_file(
    synth: EspeakSynthesizer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "clip.wav"
    target.write_bytes(b"old take")

    def disk_full(self: wave.Wave_write, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(wave.Wave_write, "writeframes", disk_full)
    with pytest.raises(OutputError, match="磁盘已满"):
        synth.synthesize(SHORT, None, tmp_path / "clip")
    assert target.read_bytes() == b"old take"
    assert [p.name for p in tmp_path.iterdir()] == ["clip.wav"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod 0o555; covered by the parent-is-a-file case")
def test_read_only_folder_raises_output_error(synth: EspeakSynthesizer, tmp_path: Path) -> None:
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        with pytest.raises(OutputError):
            synth.synthesize(SHORT, None, out / "clip")
        assert list(out.iterdir()) == []
    finally:
        out.chmod(0o755)


def test_get_synthesizer_engines_aliases_and_catalogue() -> None:
    synth = get_synthesizer("espeak", RenderSettings())
    assert isinstance(synth, EspeakSynthesizer) and isinstance(synth, Synthesizer)
    assert synth.name == "espeak"
    # "offline" means render.offline_engine: neural (falling back to espeak) by default, or espeak.
    offline = get_synthesizer("offline", RenderSettings())
    assert isinstance(offline, FallbackSynthesizer) and offline.name == "neural"
    assert isinstance(offline.fallback, EspeakSynthesizer)
    assert get_synthesizer("offline", RenderSettings(offline_engine="espeak")).name == "espeak"
    names = {(v.engine, v.name) for v in list_voices()}
    assert {("neural", "baker"), ("espeak", "cmn"), ("edge", "zh-CN-XiaoxiaoNeural")} <= names
    assert all(v.description for v in list_voices())
    with pytest.raises(SynthesisFailed, match="neural, espeak, edge"):
        get_synthesizer("festival", RenderSettings())
