"""Proof of air: did a microphone beside the horn hear the program that was playing?

A monitor (outreach/audio/monitor.py) captures a few short windows during a play, by default
3 x 8 s near the start, the middle and the end, each with its nominal offset into the program.
`match(reference, captures)` decides whether those windows hold the program at those offsets:

- Features: the amplitude of 24 bands from 300 to 3400 Hz (what a horn radiates), taken every
  8 ms at 8 kHz, band-passed in time to 1-16 Hz (the syllable rhythm) and scaled per band.
  Stationary noise, the horn's colouring and the microphone's gain fall away; syllables remain.
- Each window is cross-correlated with the program's features around its nominal offset, over
  every lag that a delay of MIN_DELAY_S..MAX_DELAY_S and a clock drift of +-MAX_DRIFT allow; the
  correlation curve is turned into z (peak height over the curve's own median and spread).
- Position-aware: one delay and one drift must explain every window (lag_i = delay - drift *
  offset_i, each within JITTER_S). The path whose weakest window is strongest wins, and the play
  is heard only when that weakest window stands out (z >= Z_HEARD). So the same scripts in
  another order, the chime alone, noise or silence are not heard: some window fails at its place.
- `score` is that weakest z over 2 * Z_HEARD, clipped to 0..1: heard exactly when score >= 0.5.
  `snr_db` is estimated by fitting the capture's band energies to the program's (plus a reverb
  tail) at the matched lags: what the fit explains is signal, the rest is noise.

Only figures leave this module (ProofResult); captured samples are dropped by the caller once
matched. Pure numpy/scipy; decoding the program uses miniaudio, as the stations do.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from outreach.errors import AudioError

if TYPE_CHECKING:
    from types import ModuleType

SAMPLE_RATE = 8000  # the horn band (300-3400 Hz) fits; a quarter of the work of 16 kHz
N_FFT, HOP = 256, 64  # 32 ms windows every 8 ms
FPS = SAMPLE_RATE / HOP
BAND_HZ = (300.0, 3400.0)
BANDS = 24
MODULATION_HZ = (1.0, 16.0)
WINDOW_S = 8.0
WINDOWS = 3
MIN_DELAY_S, MAX_DELAY_S = -0.25, 2.5  # output and acoustic delay between play start and the microphone
MAX_DRIFT = 0.006  # the player's and the microphone's clocks may differ by this fraction (0.6%)
JITTER_S = 0.06  # each window's start may be off by this much (capture start-up)
# The weakest window's peak, in spreads above its curve's median. benchmarks/proof_of_air.py: the highest of
# 1,050 negatives 3.2, the lowest of 120 plays at -5 dB SNR 4.5 (at +10 dB 13).
Z_HEARD = 4.0
SILENT_DBFS = -80.0  # a window quieter than this is silence
_EPS = 1e-12


@dataclass(frozen=True)
class Capture:
    """One captured window: samples (mono, -1..1) and its nominal offset into the program."""

    offset_s: float
    samples: np.ndarray
    sample_rate: int


@dataclass(frozen=True)
class WindowFigures:
    """What one window showed, at the path chosen for all windows."""

    offset_s: float
    lag_s: float  # capture time minus program time at this window
    correlation: float  # feature correlation with the program at that lag
    z: float  # how far that correlation stands above the window's other lags
    snr_db: float | None
    level_dbfs: float
    silent: bool

    def to_dict(self) -> dict[str, Any]:
        return {"offset_s": round(self.offset_s, 3), "lag_s": round(self.lag_s, 3),
                "correlation": round(self.correlation, 4), "z": round(self.z, 2),
                "snr_db": None if self.snr_db is None else round(self.snr_db, 1),
                "level_dbfs": round(self.level_dbfs, 1), "silent": self.silent}


@dataclass(frozen=True)
class ProofResult:
    """The verdict of one play: heard or not, and the figures kept (never the audio)."""

    heard: bool
    score: float  # 0..1; heard exactly when >= 0.5
    delay_s: float | None  # delay of the program in the capture, at offset 0
    drift: float | None  # clock drift (fraction) that best explains the windows
    snr_db: float | None  # estimated signal-to-noise ratio in the horn band
    windows: tuple[WindowFigures, ...] = field(default=())
    reason: str = ""  # why not heard, in Chinese, for the play's detail

    def event_fields(self) -> dict[str, Any]:
        """The figures an as-run event carries (station protocol: proof_*)."""
        # Rounded down, so that a score just under 0.5 never reads as heard's 0.5 (the server checks the two agree).
        return {"proof_heard": self.heard, "proof_score": math.floor(self.score * 10000) / 10000,
                "proof_delay_s": None if self.delay_s is None else round(self.delay_s, 3),
                "proof_snr_db": None if self.snr_db is None else round(self.snr_db, 1)}

    def columns(self) -> dict[str, float | None]:
        """The broadcast columns it fills: `records.mark_program(..., proof=result.columns())`."""
        fields = self.event_fields()
        return {k: fields[k] for k in ("proof_score", "proof_delay_s", "proof_snr_db")}

    def to_dict(self) -> dict[str, Any]:
        return self.event_fields() | {"drift": None if self.drift is None else round(self.drift, 5),
                                      "reason": self.reason, "windows": [w.to_dict() for w in self.windows]}


def not_heard(reason: str, windows: Sequence[WindowFigures] = ()) -> ProofResult:
    """A verdict with no match: `reason` says why (no capture, silence, no program found)."""
    return ProofResult(False, 0.0, None, None, None, tuple(windows), reason)


# --- signals -------------------------------------------------------------------------------------


def decode_program(path: Path) -> np.ndarray:
    """The program MP3 (or WAV) as mono float32 samples at SAMPLE_RATE; AudioError if it cannot be read."""
    import miniaudio

    try:
        decoded = miniaudio.decode_file(str(path), output_format=miniaudio.SampleFormat.FLOAT32, nchannels=1,
                                        sample_rate=SAMPLE_RATE)
    except (miniaudio.DecodeError, miniaudio.MiniaudioError, OSError) as exc:
        raise AudioError(f"{path}：无法解码节目音频（{exc}）；请确认文件完整，或重新同步/生成节目") from exc
    return np.asarray(decoded.samples, dtype=np.float32)


def resample(samples: np.ndarray, rate: int) -> np.ndarray:
    """`samples` at `rate` as float32 at SAMPLE_RATE (polyphase, so cheap for 16/22.05/44.1/48 kHz)."""
    x = np.asarray(samples, dtype=np.float32)
    if rate == SAMPLE_RATE:
        return x
    if rate <= 0:
        raise AudioError(f"采样率 {rate} 无效")
    g = math.gcd(int(rate), SAMPLE_RATE)
    return _scipy().signal.resample_poly(x, SAMPLE_RATE // g, int(rate) // g).astype(np.float32)


def level_dbfs(samples: np.ndarray) -> float:
    """RMS level of `samples` in dB full scale (-120 for digital silence)."""
    if len(samples) == 0:
        return -120.0
    return 10 * math.log10(float(np.mean(np.square(samples, dtype=np.float64))) + 1e-12)


def _band_matrix() -> np.ndarray:
    edges = np.geomspace(BAND_HZ[0], BAND_HZ[1], BANDS + 1)
    freqs = np.fft.rfftfreq(N_FFT, 1 / SAMPLE_RATE)
    return np.stack([((freqs >= lo) & (freqs < hi)).astype(np.float32) for lo, hi in zip(edges, edges[1:])])


_BAND_MATRIX = _band_matrix()
_HANN = np.hanning(N_FFT).astype(np.float32)


@functools.cache
def _scipy() -> ModuleType:
    """scipy, imported on first use: a monitor process must be capturing within 2 s of its start, and
    scipy.signal alone takes seconds to import on a small box; matching comes after the capture."""
    import scipy.ndimage
    import scipy.optimize
    import scipy.signal

    return scipy


@functools.cache
def _modulation() -> np.ndarray:
    return np.asarray(_scipy().signal.butter(2, MODULATION_HZ, btype="bandpass", fs=FPS, output="sos"))


def band_energies(x: np.ndarray) -> np.ndarray:
    """Frames x BANDS energies of `x` (at SAMPLE_RATE), one frame every HOP samples."""
    if len(x) < N_FFT:
        x = np.pad(x, (0, N_FFT - len(x)))
    frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP]
    spectrum = np.fft.rfft(frames * _HANN, axis=1)
    power = spectrum.real ** 2 + spectrum.imag ** 2
    return (power @ _BAND_MATRIX.T).astype(np.float64)


def features(energies: np.ndarray) -> np.ndarray:
    """Band amplitudes, band-passed in time to the syllable rhythm, each band scaled to unit spread.

    Amplitude (not log energy) because noise adds to it: under babble louder than the program, the
    program's syllables still push each band up when they come, where a log would follow the babble.
    """
    f = np.sqrt(energies)
    if len(f) > 13:  # sosfiltfilt needs a few frames beyond the filter's length
        f = _scipy().signal.sosfiltfilt(_modulation(), f, axis=0)
    f = f - f.mean(axis=0)
    return f / (f.std(axis=0) + 1e-9)


class Reference:
    """A program's samples at SAMPLE_RATE, from which each window's stretch of features is cut."""

    def __init__(self, samples: np.ndarray) -> None:
        self.samples = np.asarray(samples, dtype=np.float32)
        self.length_s = len(self.samples) / SAMPLE_RATE

    @classmethod
    def from_file(cls, path: Path) -> Reference:
        return cls(decode_program(path))

    def energies(self, first_frame: int, frames: int) -> np.ndarray:
        """Band energies of frames first_frame.. (frame k starts at program sample k * HOP); zeros outside."""
        start = first_frame * HOP
        count = (frames - 1) * HOP + N_FFT
        lo, hi = max(start, 0), min(start + count, len(self.samples))
        x = np.zeros(count, dtype=np.float32)
        if hi > lo:
            x[lo - start:hi - start] = self.samples[lo:hi]
        return band_energies(x)[:frames]


def plan_windows(length_s: float, *, windows: int = WINDOWS, window_s: float = WINDOW_S) -> tuple[float, ...]:
    """Nominal capture offsets (s from play start): near the start, spread over the middle, near the end.

    The first window waits 2 s for the horn's delay; the last ends 0.5 s before the program does.
    Windows never overlap (one microphone records them one after another, opened 1 s apart at
    least), so a short program gets fewer (at least one).
    """
    first, last = min(2.0, max(length_s - window_s, 0.0)), max(length_s - window_s - 0.5, 0.0)
    count = max(1, min(windows, int((last - first) // (window_s + 1.0)) + 1)) if last > first else 1
    if count == 1:
        return (round(first, 3),)
    step = (last - first) / (count - 1)
    return tuple(round(first + i * step, 3) for i in range(count))


@dataclass
class _Curve:
    """One window against the program: correlation and z for every lag it may have."""

    offset_s: float
    first_frame: int  # program frame matched by lag index 0
    corr: np.ndarray
    z: np.ndarray
    z_tolerant: np.ndarray  # z, each lag taking the best within JITTER_S
    energies: np.ndarray  # the capture's band energies
    level_dbfs: float
    silent: bool

    def lag_s(self, index: int) -> float:
        return self.offset_s - (self.first_frame + index) / FPS

    def index_of(self, lag_s: np.ndarray) -> np.ndarray:
        return np.rint((self.offset_s - lag_s) * FPS).astype(np.int64) - self.first_frame


def _xcorr(c: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Normalised correlation of capture features `c` (n x b) at every offset into `r` (m x b, m >= n)."""
    n, m = len(c), len(r)
    size = 1 << int(math.ceil(math.log2(n + m)))
    spectrum = np.sum(np.fft.rfft(r, size, axis=0) * np.conj(np.fft.rfft(c, size, axis=0)), axis=1)
    raw = np.fft.irfft(spectrum, size)[:m - n + 1]
    energy = np.concatenate([[0.0], np.cumsum(np.sum(r * r, axis=1))])
    local = np.sqrt(np.maximum(energy[n:] - energy[:-n], _EPS) * float(np.sum(c * c)))
    return np.asarray(raw / local)


def _curve(reference: Reference, capture: Capture, max_lag_s: float) -> _Curve:
    """Correlate one window with the program over lags MIN_DELAY_S - drift .. max_lag_s (+ jitter)."""
    x = resample(capture.samples, capture.sample_rate)
    level = level_dbfs(x)
    energies = band_energies(x)
    n = len(energies)
    lo_lag = MIN_DELAY_S - MAX_DRIFT * capture.offset_s - JITTER_S
    first = int(math.floor((capture.offset_s - max_lag_s - JITTER_S) * FPS))
    frames = n + int(math.ceil((capture.offset_s - lo_lag) * FPS)) - first + 1
    ref = features(reference.energies(first, frames))
    silent = level < SILENT_DBFS or n < 16
    if silent:
        corr = np.zeros(frames - n + 1)
        z = corr.copy()
    else:
        corr = _xcorr(features(energies), ref)
        median = float(np.median(corr))
        spread = 1.4826 * float(np.median(np.abs(corr - median))) + 1e-6
        z = (corr - median) / spread
    reach = max(1, int(round(JITTER_S * FPS)))
    tolerant = _scipy().ndimage.maximum_filter1d(z, 2 * reach + 1, mode="nearest")
    return _Curve(capture.offset_s, first, corr, z, tolerant, energies, level, silent)


def _best_path(curves: Sequence[_Curve]) -> tuple[float, float]:
    """(delay, drift) whose weakest window is strongest: lag_i = delay - drift * offset_i."""
    offsets = np.array([c.offset_s for c in curves])
    span = max(float(offsets.max()), 1.0)
    delays = np.arange(MIN_DELAY_S, MAX_DELAY_S + 1e-9, 1 / FPS)
    steps = int(math.ceil(MAX_DRIFT * span * FPS))  # one frame of lag at the last window per step
    drifts = np.linspace(-MAX_DRIFT, MAX_DRIFT, 2 * steps + 1)
    weakest = np.full((len(drifts), len(delays)), np.inf)
    total = np.zeros_like(weakest)
    for c in curves:
        lags = delays[None, :] - drifts[:, None] * c.offset_s
        index = c.index_of(lags)
        valid = (index >= 0) & (index < len(c.z_tolerant))
        z = np.where(valid, c.z_tolerant[np.clip(index, 0, len(c.z_tolerant) - 1)], -np.inf)
        weakest = np.minimum(weakest, z)
        total += np.where(valid, z, 0.0)
    best = np.unravel_index(int(np.argmax(weakest + 1e-3 * total)), weakest.shape)
    return float(delays[best[1]]), float(drifts[best[0]])


_TAILS = (0.08, 0.3)  # reverberation time constants (s) of the signal model behind the SNR estimate


def _tail(energies: np.ndarray, tau_s: float) -> np.ndarray:
    """`energies` smeared by an exponential decay of `tau_s` (what a room adds after each sound)."""
    a = math.exp(-1 / (tau_s * FPS))
    return np.asarray(_scipy().signal.lfilter([0.0, 1 - a], [1.0, -a], energies, axis=0))


def _signal_noise(captured: np.ndarray, program: np.ndarray) -> tuple[float, float]:
    """(signal, noise) power of a window: the part of each band the program (and its tail) explains, and the rest."""
    smooth = np.ones(5) / 5
    cap = _scipy().ndimage.convolve1d(captured, smooth, axis=0, mode="nearest")
    ref = _scipy().ndimage.convolve1d(program, smooth, axis=0, mode="nearest")
    sig = noise = 0.0
    for b in range(cap.shape[1]):
        columns = [ref[:, b]] + [_tail(ref[:, b], tau) for tau in _TAILS]
        scale = [float(np.mean(col)) + _EPS for col in columns]
        design = np.stack([col / s for col, s in zip(columns, scale)] + [np.ones(len(cap))], axis=1)
        target_scale = float(np.mean(cap[:, b])) + _EPS
        weights, _ = _scipy().optimize.nnls(design, cap[:, b] / target_scale)
        explained = float(np.mean(design[:, :-1] @ weights[:-1])) * target_scale
        sig += explained
        noise += max(float(np.mean(cap[:, b])) - explained, 1e-6 * explained + _EPS)
    return sig, noise


def _db(ratio: float) -> float:
    """A power ratio in dB, within +-60 dB (beyond that the estimate says nothing more)."""
    return min(max(10 * math.log10(max(ratio, 1e-12)), -60.0), 60.0)


def _window_figures(reference: Reference, c: _Curve, delay_s: float,
                    drift: float) -> tuple[WindowFigures, float, float]:
    """The figures of one window at the chosen path, with its signal and noise power."""
    if c.silent:
        return WindowFigures(c.offset_s, delay_s - drift * c.offset_s, 0.0, 0.0, None, c.level_dbfs, True), 0.0, 0.0
    reach = max(1, int(round(JITTER_S * FPS)))
    centre = int(np.clip(c.index_of(np.array(delay_s - drift * c.offset_s)), 0, len(c.z) - 1))
    lo, hi = max(centre - reach, 0), min(centre + reach + 1, len(c.z))
    index = lo + int(np.argmax(c.z[lo:hi]))
    program = reference.energies(c.first_frame + index, len(c.energies))
    sig, noise = _signal_noise(c.energies, program)
    figures = WindowFigures(c.offset_s, c.lag_s(index), float(c.corr[index]), float(c.z[index]),
                            _db(sig / noise), c.level_dbfs, False)
    return figures, sig, noise


def match(reference: Reference, captures: Sequence[Capture]) -> ProofResult:
    """Whether `captures` hold the program of `reference`, each at its offset, on one delay and drift."""
    if not captures:
        return not_heard("没有录到监听音频")
    curves = [_curve(reference, cap, MAX_DELAY_S + MAX_DRIFT * cap.offset_s) for cap in captures]
    if all(c.silent for c in curves):
        figures = [_window_figures(reference, c, 0.0, 0.0)[0] for c in curves]
        return not_heard("话筒录到的是静音：请检查话筒的连接和录音音量，以及功放和喇叭是否在响", figures)
    delay, drift = _best_path(curves)
    measured = [_window_figures(reference, c, delay, drift) for c in curves]
    figures = [m[0] for m in measured]
    weakest = min(range(len(figures)), key=lambda i: figures[i].z)
    z_min = figures[weakest].z
    heard = z_min >= Z_HEARD
    sig, noise = sum(m[1] for m in measured), sum(m[2] for m in measured)
    reason = "" if heard else (f"第 {weakest + 1} 段监听录音（节目第 {figures[weakest].offset_s:.0f} 秒起）"
                               f"没有对上正在播的节目（z = {z_min:.1f}，须至少 {Z_HEARD}）")
    return ProofResult(heard, float(np.clip(z_min / (2 * Z_HEARD), 0.0, 1.0)), delay, drift,
                       _db(sig / noise) if sig > 0 else None, tuple(figures), reason)


def prove(program: Path | Reference, captures: Sequence[Capture]) -> ProofResult:
    """`match` against a program file (decoded here) or an already decoded Reference."""
    reference = program if isinstance(program, Reference) else Reference.from_file(program)
    return match(reference, captures)
