"""Villagers must understand the offline voices: every approved clip is transcribed by a speech recogniser.

The recognisers are the benchmark's INSTRUMENTS (today Whisper base: faster-whisper, int8, Mandarin,
beam 5, seed 0, no VAD), shipped as PyPI packages (the `test` extra); each test runs once per
instrument. Every repeat in each mastered clip is transcribed from the clip's
own audio, region by region (the sidecar records where each repeat lies): Whisper's long-form
decoding, fed a clip that says the same text twice, skips or garbles the second time (one clip
scored 29% whole and 9% region by region). The reference is the script's spoken text, once per repeat. Scoring is over
Hanzi, in simplified characters, after `outreach tn` on both sides, number strings left out on
both sides (the recogniser writes 96110 in several forms); see benchmarks/intelligibility.py.
The same transcripts are also scored over toned pinyin, where a homophone is no error: that error
rate is the voice's own (a wrong syllable or tone), whatever word the recogniser guessed.
The library is checked here for the default neural engine, and for kokoro in
test_intelligibility_kokoro.py (its own module, so the two run on separate test workers).
Recordings (engine: recording) are not scored, and each skip prints its reason: a human voice,
often in the local dialect, is judged by the reviewer who must hear it before approving it.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from outreach.config import RenderSettings, load_config
from outreach.content.scripts import load_library
from outreach.content.textnorm import load_lexicon, normalize
from outreach.tts import get_synthesizer

from benchmark_module import load_benchmark

REPO = Path(__file__).resolve().parents[2]
INSTRUMENTS = load_benchmark("intelligibility").INSTRUMENTS


@dataclass(frozen=True)
class Limits:
    mean: float  # the library's mean CER
    clip: float  # every clip's CER
    syllables: float  # the library's mean toned-syllable error: the voice's own faults, homophones aside


# (engine, instrument) -> its limits. A second instrument is a line in the benchmark's WHISPER_PACKAGES
# and its limits here (Whisper small from PyPI is incomplete: see there).
LIMITS = {
    # Measured with word-level prosody (issue 19): mean 10.9 %, worst clip 18.6 %, toned syllables
    # 5.0 % (before: 11.6 %, 21.3 %). No further lever lowered it beyond the recogniser's noise
    # (benchmarks/intelligibility.py, README): more than half of what is left are homophones Whisper
    # base picks without context (乡亲 -> 相亲, 骗 -> 片, 县 -> 线). The target mean of 10 % is
    # not reached, so the mean keeps a small margin over what is measured; every clip is within 20 %.
    ("neural", "base"): Limits(mean=0.115, clip=0.20, syllables=0.06),
    # The bound for the licence-clean engine: at most 18 % mean on Whisper base. Measured with
    # kokoro.py of 2026-12-06: mean 18.2 %, worst clip 30.9 % (fraud-96110: 幺幺零 heard as 摇摇铃),
    # toned syllables 12.4 %. The 18 % is not reached yet (issue 19 stays open): the mean limit
    # sits just above the measured 18.2 %, so any regression of the engine or its front end fails here.
    ("kokoro", "base"): Limits(mean=0.185, clip=0.33, syllables=0.14),
}
# Sentences whose espeak rendering the recogniser must find far worse than the neural one.
CONTRAST = [
    "村民朋友们请注意，骗子会冒用别人的身份证办手机卡，再拿去干坏事。",
    "乡亲们请注意，家里的老人和孩子在路上最需要照顾。",
    "一定要接听，耐心听民警把话说完，千万不要挂断，不要拉黑。",
]

pytestmark = pytest.mark.slow


def _bench():
    return load_benchmark("intelligibility")


@pytest.fixture(scope="module")
def bench():
    if importlib.util.find_spec("faster_whisper") is None:
        pytest.fail("faster-whisper is not installed; run `pip install -e '.[test]'` (tools/test does)")
    return _bench()


@pytest.fixture(scope="module", params=INSTRUMENTS)
def asr(request: pytest.FixtureRequest, bench, tmp_path_factory: pytest.TempPathFactory):
    return bench.Recognizer(tmp_path_factory.mktemp("asr"), size=request.param)


def library_scores(build: Path, engine: str, bench, asr, repo_root: Path) -> dict[str, tuple[float, float]]:
    """(CER, toned-syllable error) of each approved clip in `build`, over its repeats, each heard alone."""
    config = load_config(repo_root)
    scripts = {s.id: s for s in load_library(config.scripts_dir, max_chars=config.render.max_chars) if s.approved}
    clips = {}
    for meta_path in sorted((build / "clips").glob("*.json")):
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        clips[meta["script_id"]] = (meta_path.with_suffix(".mp3"), meta)
    assert set(clips) == set(scripts)
    scores = {}
    # Recordings are human voices: the reviewer who hears them judges them (tests/authoring/test_recordings.py).
    scored_ids, skipped = bench.transcribable({sid: meta for sid, (_, meta) in clips.items()})
    for script_id, reason in sorted(skipped.items()):
        print(f"{script_id:28} skipped: {reason}")
    for script_id, (mp3, meta) in sorted((k, v) for k, v in clips.items() if k in scored_ids):
        assert meta["engine"] == engine, f"{script_id} was spoken by {meta['engine']}, not the {engine} engine"
        script = scripts[script_id]
        reference = bench.scored(script.text)
        assert meta["layout"]["repeat"] == script.repeat
        heard = [bench.scored(text) for text in asr.transcribe_repeats(mp3, meta["layout"])]
        scores[script_id] = (sum(bench.cer(reference, text) for text in heard) / len(heard),
                             sum(bench.cer(bench.syllables(reference), bench.syllables(text)) for text in heard)
                             / len(heard))
        print(f"{script_id:28} {engine} on Whisper {asr.size}, repeat {script.repeat}: "
              f"CER {scores[script_id][0]:6.1%}, syllables {scores[script_id][1]:6.1%}")
    return scores


def check_limits(scores: dict, engine: str, size: str) -> None:
    limits = LIMITS[(engine, size)]
    mean = sum(c for c, _ in scores.values()) / len(scores)
    syllables = sum(s for _, s in scores.values()) / len(scores)
    print(f"{engine} library on Whisper {size}: mean CER {mean:.1%}, worst {max(c for c, _ in scores.values()):.1%}, "
          f"toned-syllable error {syllables:.1%}")
    assert mean <= limits.mean, f"library mean CER {mean:.1%} > {limits.mean:.1%}"
    worst = {k: c for k, (c, _) in scores.items() if c > limits.clip}
    assert not worst, f"clips over {limits.clip:.0%} CER: {worst}"
    assert syllables <= limits.syllables, f"library toned-syllable error {syllables:.1%} > {limits.syllables:.1%}"


def test_every_approved_clip_is_understood(rendered_build: Path, bench, asr, repo_root: Path) -> None:
    check_limits(library_scores(rendered_build, "neural", bench, asr, repo_root), "neural", asr.size)


def test_the_instrument_tells_espeak_from_neural(bench, asr, tmp_path: Path) -> None:
    lexicon = load_lexicon(REPO / "audio_scripts" / "lexicon.tsv")
    settings = RenderSettings()
    totals = {}
    for engine in ("neural", "espeak"):
        synth = get_synthesizer(engine, settings, cache_dir=tmp_path / "models")
        errors = chars = 0.0
        for i, sentence in enumerate(CONTRAST):
            result = synth.synthesize(normalize(sentence, lexicon), None, tmp_path / f"{engine}-{i}")
            assert result.engine == engine
            reference = bench.scored(sentence)
            errors += bench.cer(reference, bench.scored(asr.transcribe_file(result.path, result.fmt))) * len(reference)
            chars += len(reference)
        totals[engine] = errors / chars
    print(f"Whisper {asr.size}: neural {totals['neural']:.1%}, espeak {totals['espeak']:.1%}")
    assert totals["espeak"] >= 0.4 and totals["espeak"] >= 3 * totals["neural"], totals


def test_cer_counts_edits() -> None:
    bench = _bench()
    assert bench.cer("乡亲们请注意", "乡亲们请注意") == 0
    assert bench.cer("乡亲们请注意", "相亲们请注意") == pytest.approx(1 / 6)
    assert bench.cer("乡亲们", "") == 1
    assert bench.scored("拨打96110。App") == "拨打"
    assert bench.scored("拨打九万六千一百一十") == "拨打"
    assert bench.scored("记住三不一多") == "记住三不一多"
    # Over toned syllables a homophone is no error, a wrong syllable or tone is.
    assert bench.cer(bench.syllables("乡亲们"), bench.syllables("相亲们")) == 0
    assert bench.cer(bench.syllables("民警"), bench.syllables("明警")) == pytest.approx(1 / 2)
