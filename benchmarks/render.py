"""Benchmark: cold and warm render of the sample library; mastering speed against pydub.

Run: .venv/bin/python benchmarks/render.py
Prints the figures and two ratios measured in the same run: the parallel cold render (one
process per core) against a one-process render of the same library (whose bytes must match),
and our mastering against a pydub-only chain (apply_gain plus pydub's own effects).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from outreach.audio.ffmpeg import AudioSegment, configure_pydub  # noqa: E402
from outreach.audio.mastering import TP_MARGIN_DB, finish, load_segment, master_to_mp3, measure, shape  # noqa: E402
from outreach.audio.render import render_library  # noqa: E402
from outreach.config import load_config  # noqa: E402
from outreach.content.scripts import load_library  # noqa: E402
from outreach.content.textnorm import normalize  # noqa: E402
from outreach.tts import get_synthesizer  # noqa: E402

SPEECH_MINUTES = 10


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def ten_minutes_of_speech(config, scripts, tmp: Path) -> AudioSegment:
    synth = get_synthesizer("espeak", config.render)  # the source voice does not matter to mastering speed
    speech = AudioSegment.silent(duration=0, frame_rate=config.profile.sample_rate)
    i = 0
    while speech.duration_seconds < SPEECH_MINUTES * 60:
        script = scripts[i % len(scripts)]
        out = synth.synthesize(normalize(script.text), None, tmp / f"s{i}")
        speech += load_segment(out.path, out.fmt, config.profile.sample_rate)
        i += 1
    return speech[: SPEECH_MINUTES * 60 * 1000]


def pydub_effects(segment: AudioSegment, profile) -> AudioSegment:
    """The baseline: pydub's own filters and compressor, then apply_gain."""
    from pydub.effects import compress_dynamic_range, high_pass_filter, low_pass_filter

    x = high_pass_filter(segment, profile.highpass_hz)
    x = low_pass_filter(x, profile.lowpass_hz)
    x = compress_dynamic_range(x, threshold=-20.0, ratio=3.0, attack=10.0, release=200.0)
    return x.apply_gain(profile.target_lufs - x.dBFS)  # pydub has no LUFS: RMS dBFS stands in


def ffmpeg_processing(segment: AudioSegment, tmp: Path, profile) -> float:
    """Our mastering chain without the MP3 step: band-pass, compressor, gain, limiter (to WAV)."""
    src, shaped, out = tmp / "p-in.wav", tmp / "p-shaped.wav", tmp / "p-out.wav"
    segment.export(src, format="wav")
    loudness = shape(src, shaped, profile)
    finish(shaped, out, profile, profile.target_lufs - loudness, profile.true_peak_db - TP_MARGIN_DB, fmt="wav")
    return measure(out, fmt="wav").lufs


def main() -> None:
    configure_pydub()
    with tempfile.TemporaryDirectory(prefix="outreach-bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        ws = tmp / "ws"
        for name in ("audio_scripts", "schedules"):
            shutil.copytree(ROOT / name, ws / name)
        shutil.copy2(ROOT / "outreach.toml", ws / "outreach.toml")
        config = load_config(ws)
        scripts = load_library(config.scripts_dir, max_chars=config.render.max_chars)
        approved = [s for s in scripts if s.approved]

        cold, report = timed(render_library, config, scripts)
        assert not report.failures, report.failures
        warm, again = timed(render_library, config, scripts)
        assert all(r.cached for r in again.results)
        first = {r.path: Path(r.path).read_bytes() for r in report.results}
        serial, alone = timed(render_library, config, scripts, force=True, workers=1)
        same = all(Path(r.path).read_bytes() == first[r.path] for r in alone.results)
        audio_min = sum(r.duration_s for r in report.results) / 60
        engines = sorted({r.engine for r in report.results})
        print(f"library: {len(approved)} approved scripts, {audio_min:.1f} min of mastered clips, engine {engines}")
        print(f"cold render: {cold:.2f} s ({cold / len(approved):.2f} s per clip) on every core; one process: "
              f"{serial:.2f} s -> {serial / cold:.2f}x; bytes identical: {same}")
        print(f"warm re-render: {warm:.3f} s (target < 2 s) -> {'ok' if warm < 2 else 'SLOW'}")

        speech = ten_minutes_of_speech(config, approved, tmp)
        profile = config.profile
        ours_dsp, dsp_lufs = timed(ffmpeg_processing, speech, tmp, profile)
        ours_e2e, loud = timed(master_to_mp3, speech, tmp / "ours.mp3", profile)
        base_dsp, processed = timed(pydub_effects, speech, profile)
        base_mp3, _ = timed(processed.export, tmp / "pydub.mp3", format="mp3", bitrate=f"{profile.bitrate_kbps}k",
                            parameters=["-ar", str(profile.sample_rate)])
        base_e2e = base_dsp + base_mp3
        print(f"mastering {SPEECH_MINUTES} min of speech (band-pass, compressor, gain, limiter; no MP3):")
        print(f"  ffmpeg chain {ours_dsp:.2f} s ({dsp_lufs} LUFS) vs pydub-only chain {base_dsp:.2f} s "
              f"-> {base_dsp / ours_dsp:.1f}x faster (target >= 20x)")
        print("end to end to a verified MP3 (adds encode, loudness/true-peak check and correction passes):")
        print(f"  master_to_mp3 {ours_e2e:.2f} s ({loud.lufs} LUFS, {loud.true_peak_db} dBTP) vs pydub chain + "
              f"export {base_e2e:.2f} s (unmeasured, no true-peak control) -> {base_e2e / ours_e2e:.1f}x faster")


if __name__ == "__main__":
    main()
