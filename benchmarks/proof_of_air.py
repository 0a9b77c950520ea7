"""Proof of air: detection rate per SNR, false positives, and the matcher's cost on one core.

    .venv/bin/python benchmarks/proof_of_air.py [--trials 120] [--negatives 1000] [--baseline-trials 25]

A program of five sample scripts (about 4.4 minutes, neural voice, as `outreach render` makes
them) is played through synthetic acoustics: a horn (300-3400 Hz band-pass, soft saturation), a
synthetic room (exponentially decaying noise tail, RT60 0.8 s), a delay of 0-2 s, clock drift of
+-0.5 %, window start jitter of +-20 ms, and noise at a given SNR measured in the horn band:
pink, traffic-like bursts (passing vehicles over a rumble), or babble of 3-6 other scripts. The
monitor's 3 x 8 s windows are matched by outreach.audio.proof. Negatives: noise alone, silence
(digital and a microphone's self-noise), the program's chimes alone at their places, and the same
scripts in another order (+10 to -5 dB). Cost is CPU time on one core (BLAS/OpenMP pinned to one
thread) for one play: decoding the program and matching its windows, as a fraction of its length.
The baseline, measured in the same run, is naive full-waveform correlation: each window's raw
samples against the whole program (no features, no positions), its threshold set just above the
highest score it gave any of its negatives.

The acoustics helpers here are also used by tests/audio/test_proof.py.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":  # one core, as on the box: before numpy loads its BLAS
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = "1"

import argparse  # noqa: E402
import math  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from scipy import signal  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from outreach.audio import proof  # noqa: E402
from outreach.audio.proof import Capture, Reference, plan_windows  # noqa: E402
from outreach.config import Config  # noqa: E402

RATE = 16000  # what the monitor records
PROGRAM = ("traffic-crossing-road", "fraud-account-check", "traffic-helmet", "fraud-police-caller-id",
           "traffic-market-day")
BABBLE = ("fraud-96110", "traffic-drunk-driving", "traffic-ebike", "fraud-bank-card-check", "traffic-night-travel")
NOISES = ("pink", "traffic", "babble")
SNRS = (10.0, 5.0, 0.0, -5.0)
CHIME_TONES_S = 0.9  # the ding-dong that opens every clip (outreach.audio.mastering.chime: 0.85 s, then silence)
GAIN = 0.3  # the microphone's level: the horn at about -20 dBFS


# --- synthetic acoustics ---------------------------------------------------------------------------


def decode(path: Path, rate: int = RATE) -> np.ndarray:
    """An MP3 as mono float32 at `rate` (miniaudio, as the station decodes)."""
    import miniaudio

    d = miniaudio.decode_file(str(path), output_format=miniaudio.SampleFormat.FLOAT32, nchannels=1, sample_rate=rate)
    return np.asarray(d.samples, dtype=np.float32)


def horn(x: np.ndarray, rate: int = RATE) -> np.ndarray:
    """A horn loudspeaker: 300-3400 Hz band-pass and a soft saturation of its driver."""
    sos = signal.butter(4, [300, 3400], btype="bandpass", fs=rate, output="sos")
    return np.tanh(2.0 * signal.sosfilt(sos, x)) / 2.0


def room_impulse(rng: np.random.Generator, rate: int = RATE, rt60: float = 0.8, drr_db: float = -3.0) -> np.ndarray:
    """A synthetic room: a direct path, then a noise tail decaying 60 dB in `rt60` s, `drr_db` under the direct."""
    n = int(rate * rt60 * 1.2)
    t = np.arange(n) / rate
    tail = rng.standard_normal(n) * np.exp(-6.908 * t / rt60)
    tail[:int(0.01 * rate)] = 0.0
    h = tail / math.sqrt(float(np.sum(tail ** 2))) * 10 ** (-drr_db / 20)
    h[0] += 1.0
    return h


def pink_noise(rng: np.random.Generator, n: int, rate: int = RATE) -> np.ndarray:
    """Noise whose power falls 3 dB per octave."""
    freqs = np.fft.rfftfreq(n, 1 / rate)
    freqs[0] = freqs[1]
    return np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) / np.sqrt(freqs), n)


def traffic_noise(rng: np.random.Generator, n: int, rate: int = RATE) -> np.ndarray:
    """A road: low rumble, with vehicles passing every few seconds (bursts swelling and fading over 2-6 s)."""
    sos = signal.butter(2, [40, 2500], btype="bandpass", fs=rate, output="sos")
    rumble = signal.sosfilt(sos, rng.standard_normal(n))
    t = np.arange(n) / rate
    envelope = np.full(n, 0.15)
    at = rng.uniform(-3.0, 1.0)
    while at < n / rate:
        length = rng.uniform(2.0, 6.0)
        envelope += rng.uniform(0.5, 2.5) * np.exp(-0.5 * ((t - at - length / 2) / (length / 4)) ** 2)
        at += length + rng.uniform(0.5, 4.0)
    return rumble * envelope


def babble_noise(rng: np.random.Generator, n: int, sources: Sequence[np.ndarray]) -> np.ndarray:
    """3-6 other talkers at once, each from a random place in other speech, each at the same level."""
    out = np.zeros(n)
    for _ in range(int(rng.integers(3, 7))):
        s = sources[int(rng.integers(len(sources)))]
        if len(s) <= n:  # a talker who goes on longer than the clip: say it again
            s = np.tile(s, n // len(s) + 2)
        i = int(rng.integers(0, len(s) - n))
        seg = s[i:i + n].astype(np.float64)
        out += seg / (np.std(seg) + 1e-9)
    return out


def noise(kind: str, rng: np.random.Generator, n: int, babble: Sequence[np.ndarray]) -> np.ndarray:
    if kind == "pink":
        return pink_noise(rng, n)
    if kind == "traffic":
        return traffic_noise(rng, n)
    if kind == "babble":
        return babble_noise(rng, n, babble)
    raise ValueError(kind)


_BAND = signal.butter(4, [300, 3400], btype="bandpass", fs=RATE, output="sos")


def band_power(parts: Sequence[np.ndarray]) -> float:
    """Mean power in the horn band (300-3400 Hz) over `parts`."""
    return float(np.mean([np.mean(signal.sosfilt(_BAND, p) ** 2) for p in parts]))


def hear(rng: np.random.Generator, program: np.ndarray, offsets: Sequence[float], *, delay_s: float, drift: float,
         snr_db: float | None, kind: str = "pink", babble: Sequence[np.ndarray] = (), window_s: float = 8.0,
         rt60: float = 0.8, jitter_s: float = 0.02) -> list[Capture]:
    """What a microphone beside the horn records at `offsets` (s after the play start) of `program` (at RATE).

    The program sounds `delay_s` late, its clock runs `drift` fast; each window starts up to
    `jitter_s` off; noise `kind` is added at `snr_db` in the horn band (None: no noise).
    """
    h = room_impulse(rng, RATE, rt60)
    n_pre, n = len(h), int(round(window_s * RATE))
    heard = []
    for t in offsets:
        start = t + rng.uniform(-jitter_s, jitter_s)
        times = start - n_pre / RATE + np.arange(n_pre + n) / RATE
        x = np.interp((times - delay_s) * (1 + drift) * RATE, np.arange(len(program)), program, left=0, right=0)
        heard.append(signal.fftconvolve(horn(x), h)[n_pre:n_pre + n])
    noises = [noise(kind, rng, n, babble) if snr_db is not None else np.zeros(n) for _ in offsets]
    scale = 0.0 if snr_db is None else math.sqrt(band_power(heard) / band_power(noises) / 10 ** (snr_db / 10))
    hiss = [rng.standard_normal(n) * 3e-5 for _ in offsets]  # the microphone's own noise, about -90 dBFS
    return [Capture(t, (GAIN * (y + scale * z) + e).astype(np.float32), RATE)
            for t, y, z, e in zip(offsets, heard, noises, hiss)]


def noise_alone(rng: np.random.Generator, offsets: Sequence[float], kind: str, babble: Sequence[np.ndarray],
                window_s: float = 8.0) -> list[Capture]:
    """Windows of noise only, at a level a horn might have had."""
    n = int(round(window_s * RATE))
    out = []
    for t in offsets:
        z = noise(kind, rng, n, babble)
        out.append(Capture(t, (0.05 * z / (np.std(z) + 1e-12)).astype(np.float32), RATE))
    return out


def silence(rng: np.random.Generator, offsets: Sequence[float], level_dbfs: float | None,
            window_s: float = 8.0) -> list[Capture]:
    """Windows of digital silence (None) or of a microphone's self-noise at `level_dbfs`."""
    n = int(round(window_s * RATE))
    level = 0.0 if level_dbfs is None else 10 ** (level_dbfs / 20)
    return [Capture(t, (rng.standard_normal(n) * level).astype(np.float32), RATE) for t in offsets]


def chimes_only(program: np.ndarray, clip_starts: Sequence[float]) -> np.ndarray:
    """The program with everything but the chime opening each clip cut to silence."""
    out = np.zeros_like(program)
    for s in clip_starts:
        lo, hi = max(int((s - 0.1) * RATE), 0), int((s + CHIME_TONES_S) * RATE)
        out[lo:hi] = program[lo:hi]
    return out


# --- the program, the same scripts in other orders, and other speech ---------------------------------


@dataclass
class Material:
    """A program as the monitor's matcher and the acoustics need it."""

    path: Path  # the program MP3, as a station plays it
    samples: np.ndarray  # the program at RATE
    clip_starts: list[float]  # where each clip (its chime) starts in the program
    reordered: list[np.ndarray]  # the same scripts in other orders, at RATE
    babble: list[np.ndarray]  # other speech, at RATE


def derangements(n: int, count: int, rng: np.random.Generator) -> list[list[int]]:
    """`count` distinct orders of n items in which no item keeps its place."""
    found: list[list[int]] = []
    for _ in range(10000):
        order = [int(i) for i in rng.permutation(n)]
        if all(i != j for i, j in enumerate(order)) and order not in found:
            found.append(order)
        if len(found) == count:
            break
    return found


def build_material(config: Config, program_ids: Sequence[str] = PROGRAM, babble_ids: Sequence[str] = BABBLE, *,
                   orders: Sequence[Sequence[int]] = (), seed: int = 7) -> Material:
    """The program of `program_ids` (rendered clips of `config`), its reorderings, and other speech for babble."""
    from outreach.audio.programs import program_audio
    from outreach.audio.render import verified_clip
    from outreach.content.scripts import load_library

    library = {s.id: s for s in load_library(config.scripts_dir, max_chars=config.render.max_chars)}
    clips = [verified_clip(config, library[i]) for i in program_ids]
    path = program_audio(config, clips, gap_s=1.0)
    lengths = [len(decode(c)) / RATE for c in clips]
    starts = [sum(lengths[:i]) + i * 1.0 for i in range(len(clips))]
    orders = list(orders) or derangements(len(clips), 4, np.random.default_rng(seed))
    reordered = [decode(program_audio(config, [clips[i] for i in order], gap_s=1.0)) for order in orders]
    babble = [decode(verified_clip(config, library[i])) for i in babble_ids]
    return Material(path, decode(path), starts, reordered, babble)


def render_material(build: Path | None, ws: Path) -> Material:
    """Render (or reuse from `build`) the clips the benchmark needs, in a copy of the sample workspace at `ws`."""
    from outreach.audio.render import render_library
    from outreach.config import load_config
    from outreach.content.scripts import load_library

    for name in ("audio_scripts", "schedules"):
        shutil.copytree(REPO / name, ws / name)
    shutil.copy2(REPO / "outreach.toml", ws / "outreach.toml")
    if build is not None:
        shutil.copytree(build, ws / "build")
    config = load_config(ws)
    library = {s.id: s for s in load_library(config.scripts_dir, max_chars=config.render.max_chars)}
    report = render_library(config, [library[i] for i in (*PROGRAM, *BABBLE)])
    if report.failures:
        raise SystemExit(f"rendering failed: {report.failures}")
    return build_material(config)


# --- trials -------------------------------------------------------------------------------------------


def positive(rng: np.random.Generator, m: Material, offsets: Sequence[float], snr_db: float,
             kind: str) -> list[Capture]:
    return hear(rng, m.samples, offsets, delay_s=rng.uniform(0.0, 2.0), drift=rng.uniform(-0.005, 0.005),
                snr_db=snr_db, kind=kind, babble=m.babble)


NEGATIVES = ("pink alone", "traffic alone", "babble alone", "digital silence", "microphone hiss",
             "chimes alone", "reordered")


def negative(rng: np.random.Generator, m: Material, offsets: Sequence[float], what: str) -> list[Capture]:
    """One negative trial of kind `what` (NEGATIVES)."""
    if what.endswith(" alone") and what != "chimes alone":
        return noise_alone(rng, offsets, what.split()[0], m.babble)
    if what == "digital silence":
        return silence(rng, offsets, None)
    if what == "microphone hiss":
        return silence(rng, offsets, rng.uniform(-75.0, -55.0))
    program = chimes_only(m.samples, m.clip_starts) if what == "chimes alone" else \
        m.reordered[int(rng.integers(len(m.reordered)))]
    return hear(rng, program, offsets, delay_s=rng.uniform(0.0, 2.0), drift=rng.uniform(-0.005, 0.005),
                snr_db=float(rng.choice([10.0, 5.0, 0.0, -5.0])), kind=str(rng.choice(NOISES)), babble=m.babble)


def naive_score(program: np.ndarray, captures: Sequence[Capture]) -> float:
    """The baseline: raw samples of each window against the whole program; the weakest window's peak z."""
    scores = []
    for cap in captures:
        x = proof.resample(cap.samples, cap.sample_rate).astype(np.float64)
        x = (x - x.mean()) / (np.linalg.norm(x - x.mean()) + 1e-12)
        n, size = len(x), 1 << int(math.ceil(math.log2(len(program) + len(x))))
        raw = np.fft.irfft(np.fft.rfft(program, size) * np.conj(np.fft.rfft(x, size)), size)[:len(program) - n + 1]
        energy = np.concatenate([[0.0], np.cumsum(program ** 2)])
        corr = raw / np.sqrt(np.maximum(energy[n:] - energy[:-n], 1e-12))
        median = float(np.median(corr))
        scores.append((float(corr.max()) - median) / (1.4826 * float(np.median(np.abs(corr - median))) + 1e-12))
    return min(scores)


@dataclass
class Tally:
    """Outcomes of the matcher over a run."""

    heard: dict[tuple[float, str], list[bool]]
    weakest_z: dict[float, list[float]]  # positives: the weakest window's z, by SNR
    snr_estimates: dict[float, list[float]]
    delay_errors: list[float]
    negatives: dict[str, list[tuple[bool, float]]]  # (heard, score) by kind of negative
    match_cpu_s: list[float]


def run_positives(rng: np.random.Generator, m: Material, ref: Reference, offsets: Sequence[float], trials: int,
                  tally: Tally) -> None:
    for snr in SNRS:
        for k in range(trials):
            kind = NOISES[k % len(NOISES)]
            delay, drift = rng.uniform(0.0, 2.0), rng.uniform(-0.005, 0.005)
            caps = hear(rng, m.samples, offsets, delay_s=delay, drift=drift, snr_db=snr, kind=kind, babble=m.babble)
            t0 = time.process_time()
            r = proof.match(ref, caps)
            tally.match_cpu_s.append(time.process_time() - t0)
            tally.heard.setdefault((snr, kind), []).append(r.heard)
            tally.weakest_z.setdefault(snr, []).append(min((w.z for w in r.windows), default=0.0))
            if r.heard and r.snr_db is not None and r.delay_s is not None:
                tally.snr_estimates.setdefault(snr, []).append(r.snr_db)
                tally.delay_errors.append(abs(r.delay_s - delay))


def run_negatives(rng: np.random.Generator, m: Material, ref: Reference, offsets: Sequence[float], count: int,
                  tally: Tally) -> None:
    for k in range(count):
        what = NEGATIVES[k % len(NEGATIVES)]
        r = proof.match(ref, negative(rng, m, offsets, what))
        tally.negatives.setdefault(what, []).append((r.heard, r.score))


def run_baseline(rng: np.random.Generator, m: Material, ref: Reference, offsets: Sequence[float],
                 trials: int) -> tuple[dict[float, float], float, float]:
    """Naive correlation: (detection rate per SNR at a threshold above all its negatives, threshold, CPU s/play)."""
    program = ref.samples.astype(np.float64)
    negatives, cpu = [], []
    for k in range(trials * len(SNRS)):
        negatives.append(naive_score(program, negative(rng, m, offsets, NEGATIVES[k % len(NEGATIVES)])))
    threshold = max(negatives) + 1e-6
    rates = {}
    for snr in SNRS:
        hits = []
        for k in range(trials):
            caps = positive(rng, m, offsets, snr, NOISES[k % len(NOISES)])
            t0 = time.process_time()
            hits.append(naive_score(program, caps) >= threshold)
            cpu.append(time.process_time() - t0)
        rates[snr] = float(np.mean(hits))
    return rates, threshold, float(np.mean(cpu))


def report(m: Material, offsets: Sequence[float], tally: Tally, decode_s: float,
           baseline: tuple[dict[float, float], float, float]) -> None:
    length = len(m.samples) / RATE
    print(f"program: {len(m.clip_starts)} scripts, {length:.1f} s; windows 3 x 8 s at "
          f"{', '.join(f'{o:.1f}' for o in offsets)} s; heard when score >= 0.50 (z >= {proof.Z_HEARD})")
    rates, threshold, naive_cpu = baseline
    print(f"{'SNR':>7} {'pink':>7} {'traffic':>8} {'babble':>7} {'all':>7} {'trials':>7} {'lowest z':>9} "
          f"{'est. SNR':>9} {'baseline':>9}")
    for snr in SNRS:
        per = [float(np.mean(tally.heard[(snr, k)])) for k in NOISES]
        every = [h for k in NOISES for h in tally.heard[(snr, k)]]
        est = tally.snr_estimates.get(snr, [float("nan")])
        print(f"{snr:+5.0f} dB {per[0]:7.1%} {per[1]:8.1%} {per[2]:7.1%} {np.mean(every):7.1%} {len(every):7d} "
              f"{min(tally.weakest_z[snr]):9.2f} {np.median(est):+7.1f} dB {rates[snr]:8.1%}")
    outcomes = [o for v in tally.negatives.values() for o in v]
    top = max(s for _, s in outcomes)
    print(f"false positives: {sum(h for h, _ in outcomes)} / {len(outcomes)}; highest negative score "
          f"{top:.2f} (z {top * 2 * proof.Z_HEARD:.2f})")
    for kind, v in tally.negatives.items():
        print(f"  {kind:16} {sum(h for h, _ in v):3d} / {len(v):4d}   highest score {max(s for _, s in v):.2f}")
    print(f"delay error of heard plays: median {np.median(tally.delay_errors) * 1000:.0f} ms, "
          f"max {max(tally.delay_errors) * 1000:.0f} ms")
    per_play = decode_s + float(np.mean(tally.match_cpu_s))
    print(f"cost per play on one core: decode {decode_s:.3f} s + match {np.mean(tally.match_cpu_s):.3f} s "
          f"= {per_play:.3f} s CPU for {length:.0f} s of program = {per_play / length:.2%} of real time (goal <= 2%)")
    print(f"baseline (naive full-waveform correlation, threshold z {threshold:.1f}): "
          f"{decode_s + naive_cpu:.3f} s CPU per play = {(decode_s + naive_cpu) / length:.2%} of real time; "
          f"the matcher costs {per_play / (decode_s + naive_cpu):.2f}x the baseline")


def run(args: argparse.Namespace, m: Material) -> None:
    t0 = time.process_time()
    ref = Reference.from_file(m.path)
    decode_s = time.process_time() - t0
    offsets = plan_windows(ref.length_s)
    rng = np.random.default_rng(args.seed)
    tally = Tally({}, {}, {}, [], {}, [])
    run_positives(rng, m, ref, offsets, args.trials, tally)
    run_negatives(rng, m, ref, offsets, args.negatives, tally)
    baseline = run_baseline(rng, m, ref, offsets, args.baseline_trials)
    report(m, offsets, tally, decode_s, baseline)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=120, help="positive trials per SNR (default 120)")
    parser.add_argument("--negatives", type=int, default=1050, help="negative trials (default 1050)")
    parser.add_argument("--baseline-trials", type=int, default=25, help="baseline trials per SNR (default 25)")
    parser.add_argument("--build", type=Path, help="a rendered build folder to reuse (else the clips are rendered)")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="proof-of-air-") as tmp:
        run(args, render_material(args.build, Path(tmp) / "ws"))
    print(f"(benchmark wall time {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
