"""The kokoro engine: real Kokoro-82M speech, repeatable bytes, clause splitting, and the commercial-ok weights."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from outreach.audio.mastering import measure
from outreach.audio.render import render_library
from outreach.cli import cli
from outreach.config import RenderSettings, load_config
from outreach.content.scripts import load_library
from outreach.errors import ConfigError, SynthesisFailed, UnknownVoice
from outreach.tts import (
    EdgeSynthesizer, EspeakSynthesizer, FallbackSynthesizer, KokoroSynthesizer, NeuralSynthesizer, Synthesizer,
    get_synthesizer, kokoro, list_voices,
)

SHORT = "请注意防范电信诈骗。"
COMMERCIAL = {"weights": "commercial-ok"}


def hanzi(text: str) -> int:
    return sum("\u4e00" <= ch <= "\u9fff" for ch in text)


def commercial_ok(ws: Path, keep: str = "") -> Path:
    """`ws` with weights = "commercial-ok" and the sample's engine lines set to kokoro, except the one named `keep`."""
    toml = ws / "outreach.toml"
    lines = []
    for line in toml.read_text(encoding="utf-8").splitlines(keepends=True):
        key = line.split("=")[0].strip()
        lines.append(line.replace('"neural"', '"kokoro"', 1) if key in ("engine", "offline_engine") and key != keep
                     else line)
    toml.write_text("".join(lines).replace("[render]\n", '[render]\nweights = "commercial-ok"\n', 1), encoding="utf-8")
    return ws


@pytest.mark.slow
def test_speaks_a_sentence_at_the_rate_asked_and_repeats_its_bytes(tmp_path: Path) -> None:
    synth = KokoroSynthesizer(RenderSettings(), tmp_path / "models")
    first = synth.synthesize(SHORT, None, tmp_path / "a")
    assert (first.path, first.fmt, first.engine, first.voice) == (tmp_path / "a.wav", "wav", "kokoro", "jm_kumo")
    with wave.open(str(first.path)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, kokoro.SAMPLE_RATE)
        audio = np.frombuffer(wav.readframes(wav.getnframes()), "<i2").astype(np.float64) / 32768
    seconds = len(audio) / kokoro.SAMPLE_RATE
    assert 2.8 <= hanzi(SHORT) / seconds <= 4.8  # render.rate 3.8 Hanzi/s; one short sentence varies more
    windows = audio[: len(audio) // 1200 * 1200].reshape(-1, 1200)  # 50 ms
    voiced = np.mean(np.sqrt(np.mean(windows**2, axis=1)) > 10 ** (-40 / 20))
    assert voiced > 0.6, f"only {voiced:.0%} of the sentence is sound"
    assert -28 <= measure(first.path, "wav").lufs <= -10
    assert np.abs(audio).max() <= kokoro.PEAK + 1e-3  # the model's overshoot is scaled, never clipped
    assert synth.synthesize(SHORT, None, tmp_path / "b").path.read_bytes() == first.path.read_bytes()
    # The model is assembled into the build folder, named by its hash (jieba's cache, if written, beside it).
    names = {p.name for p in (tmp_path / "models").iterdir()}
    assert f"kokoro-{kokoro.MODEL_SHA256[:16]}" in names and names <= {f"kokoro-{kokoro.MODEL_SHA256[:16]}",
                                                                        "jieba-0.42.1.cache"}


def test_a_sentence_is_split_only_when_too_long_and_only_at_clause_marks() -> None:
    sentence = "ʨʰi↓ŋ tʂu↘i↘, ɕjɛ↘n ʦai↘ kʰai→ʂɚ↓. "
    assert kokoro.pieces(sentence.strip()) == [sentence.strip()]  # fits: one call, however many commas
    clauses = ["a" * 40 + ",", "b b" + ",", "c" * 30 + ":", "d" * 20 + "."]
    assert kokoro.pieces(" ".join(clauses), limit=50) == [clauses[0] + " " + clauses[1], clauses[2], clauses[3]]
    # A clause longer than the limit is cut at word spaces, never inside a word that fits.
    assert kokoro.pieces("aaaa bbbb cccc dddd, ee.", limit=10) == ["aaaa bbbb", "cccc dddd,", "ee."]
    assert all(len(p) <= kokoro.MAX_PHONEMES for p in kokoro.pieces(("ma↓ " * 400).strip()))


def test_text_is_cut_into_whole_sentences_with_letters_spelled() -> None:
    assert kokoro.sentences("乡亲们，请注意。下载App！\n  ——\n别信；") == ["乡亲们，请注意。", "下载诶批批！", "别信；"]


def test_a_voice_from_another_engine_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnknownVoice, match="jm_kumo"):
        KokoroSynthesizer(RenderSettings(), tmp_path).synthesize(SHORT, "baker", tmp_path / "clip")
    assert ("kokoro", "jm_kumo") in {(v.engine, v.name) for v in list_voices()}


def _chain(synth: Synthesizer) -> list[Synthesizer]:
    if isinstance(synth, FallbackSynthesizer):
        return [synth.primary, *_chain(synth.fallback)]
    return [synth]


def test_commercial_ok_chain_is_edge_kokoro_espeak_and_never_builds_neural(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the CSMSC-trained neural engine was built")

    monkeypatch.setattr(NeuralSynthesizer, "__init__", refuse)
    settings = RenderSettings(**COMMERCIAL)
    assert (settings.engine, settings.resolve_engine("offline")) == ("offline", "kokoro")
    assert [type(s) for s in _chain(get_synthesizer("edge", settings))] == [
        EdgeSynthesizer, KokoroSynthesizer, EspeakSynthesizer]
    assert [type(s) for s in _chain(get_synthesizer(settings.engine, settings))] == [
        KokoroSynthesizer, EspeakSynthesizer]
    assert RenderSettings().refused_engine("neural") is None and settings.refused_engine("kokoro") is None
    with pytest.raises(SynthesisFailed, match='weights = "commercial-ok".*kokoro'):
        get_synthesizer("neural", settings)


@pytest.mark.parametrize("key", ["engine", "offline_engine"])
def test_commercial_ok_with_neural_in_the_settings_is_refused_at_load(workspace: Path, key: str) -> None:
    with pytest.raises(ConfigError, match=f'outreach.toml.*{key} = "neural".*"kokoro"'):
        load_config(commercial_ok(workspace, keep=key))


def test_voices_lists_kokoro_and_names_it_the_offline_engine_under_commercial_ok(workspace: Path) -> None:
    result = CliRunner().invoke(cli, ["voices", "-w", str(commercial_ok(workspace))])
    assert result.exit_code == 0, result.output
    assert [line.split()[:3] for line in result.output.splitlines() if "kokoro" in line.split()[:2]] == [
        ["*", "kokoro", "jm_kumo"]]
    assert "默认引擎：kokoro；离线引擎：kokoro" in result.output


def test_a_render_asking_for_neural_under_commercial_ok_fails_with_the_fix(workspace: Path) -> None:
    config = load_config(commercial_ok(workspace))
    script = next(s for s in load_library(config.scripts_dir, max_chars=400) if s.approved)
    # `outreach render --engine neural` (a script's engine: neural or a village's voice: baker alike)
    report = render_library(config, [script], engine_override="neural")  # refused before any synthesis
    assert report.results == []
    [(label, message)] = report.failures
    assert label == script.id and "CSMSC" in message and "engine 改为 kokoro" in message
    assert not config.clips_dir.exists() or not list(config.clips_dir.iterdir())
