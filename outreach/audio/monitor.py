"""Capture sources for proof of air, and the monitor that listens to a play while it airs.

`--monitor SPEC` (parsed by `parse_monitor`, opened by `open_source`) names what listens:

- `alsa:DEVICE`: a microphone beside the horn, through miniaudio on ALSA. DEVICE is an ALSA PCM
  name as `arecord -L` lists it (`default`, `hw:1,0`, `plughw:CARD=Device,DEV=0`, `null`).
  Opening it is tried at once, so a wrong name fails at start-up with a Chinese message naming it.
- `file:PATH`: recordings instead of a microphone (tests, trials). PATH is one WAV file, read
  for every play, or a folder: each play takes the first WAV in it by name, and deletes it
  once matched (captured audio is never kept).

The API others call (central playback: `outreach run --monitor`):

    source = open_source(parse_monitor(spec))            # MonitorError, in Chinese, if it cannot open
    started = time.monotonic()                           # just before the player starts
    monitor = PlayMonitor(source, program_mp3, length_s, started).start()
    ...                                                  # the play runs; the monitor captures beside it
    result = monitor.result(timeout_s=30)                # proof.ProofResult, or None if not done in time
    mark_program(..., evidence=Evidence.HEARD if result.heard else Evidence.PLAYER, aired_at=play_start,
                 proof=result.columns())                 # proof_score, proof_delay_s, proof_snr_db

or, blocking: `prove_play(program_mp3, source, started, length_s) -> ProofResult`. The windows
(proof.plan_windows: 3 x 8 s near the start, middle and end) are captured at their times after
`started`; a recording (`file:`) is read at those offsets without waiting. `monitor.cancel()`
drops a play cut short (an alert insert moved the program). A source that fails during the
play raises MonitorError from `result()`: no figures, rather than a false "not heard".

The station box runs this module as a process, so that it never loads numpy itself:

    python -m outreach.audio.monitor check --monitor SPEC
    python -m outreach.audio.monitor prove --monitor SPEC --program FILE --length S --started T

`prove` prints one JSON object (ProofResult.to_dict()); `--started` is time.monotonic() of the
station process when its play began (the clock is the same for every process on the machine).
Captured samples live only in memory until they are matched; only figures leave.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from outreach.audio.proof import WINDOW_S, WINDOWS, Capture, ProofResult, Reference, match, not_heard, plan_windows
from outreach.errors import AudioError

CAPTURE_RATE = 16000  # what the microphone is asked for; miniaudio converts from the card's own rate
WARM_UP_S = 0.3  # the device is opened this long before a window is due
_KINDS = ("alsa", "file")
_HINT = "请写 `alsa:设备名`（话筒，如 `alsa:default`、`alsa:hw:1,0`）或 `file:路径`（测试用的录音文件或目录）"


class MonitorError(AudioError):
    """The microphone beside the horn (--monitor) could not be named, opened or read."""


@dataclass(frozen=True)
class MonitorSpec:
    """A parsed `--monitor` value: which kind of source, and its device or path."""

    kind: str  # "alsa" or "file"
    target: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.target}"


def parse_monitor(text: str) -> MonitorSpec:
    """`alsa:DEVICE` or `file:PATH` as a MonitorSpec; MonitorError saying what is wrong and what to write."""
    value = (text or "").strip()
    if not value:
        raise MonitorError(f"--monitor 不能是空的；{_HINT}")
    kind, sep, target = value.partition(":")
    if not sep or kind.lower() not in _KINDS:
        raise MonitorError(f"--monitor {value[:80]!r}：不认识的监听来源；{_HINT}")
    kind, target = kind.lower(), target.strip()
    if not target:
        raise MonitorError(f"--monitor {value!r}：冒号后面缺少{'设备名' if kind == 'alsa' else '路径'}；{_HINT}")
    if kind == "alsa" and (len(target.encode()) > 255 or any(not c.isprintable() or c.isspace() for c in target)):
        raise MonitorError(f"--monitor {value[:80]!r}：ALSA 设备名须是不含空格的可见字符，最长 255 字节"
                           "（用 `arecord -L` 查看本机的录音设备名）")
    return MonitorSpec(kind, target)


class Source(Protocol):
    """Where the windows of one play come from."""

    def record(self, offsets: Sequence[float], window_s: float, started: float,
               stop: threading.Event) -> list[Capture]:
        """The windows at `offsets` (s after `started`, a time.monotonic() value); fewer if stopped."""

    def release(self) -> None:
        """Called once the play's windows are matched: drop whatever holds captured audio."""


def open_source(spec: MonitorSpec | str) -> Source:
    """The source `spec` names, checked now (a device is opened once, a path must exist)."""
    spec = parse_monitor(spec) if isinstance(spec, str) else spec
    if spec.kind == "alsa":
        return AlsaSource(spec.target)
    return FileSource(Path(spec.target))


def _device_id(device: str):  # type: ignore[no-untyped-def]
    """miniaudio's device id for an ALSA PCM name (the id union starts with ALSA's name), None for default."""
    import miniaudio

    if device == "default":
        return None
    raw = device.encode()
    handle = miniaudio.ffi.new("union ma_device_id *")
    miniaudio.ffi.memmove(handle, raw + b"\0", len(raw) + 1)
    return handle


class AlsaSource:
    """A microphone on ALSA through miniaudio, opened for each window (and once at start-up, to check)."""

    def __init__(self, device: str) -> None:
        import miniaudio

        self.device, self._ma = device, miniaudio
        self._open().close()

    def _open(self):  # type: ignore[no-untyped-def]
        ma = self._ma
        try:
            return ma.CaptureDevice(input_format=ma.SampleFormat.SIGNED16, nchannels=1, sample_rate=CAPTURE_RATE,
                                    buffersize_msec=50, device_id=_device_id(self.device),
                                    backends=[ma.Backend.ALSA])
        except ma.MiniaudioError as exc:
            raise MonitorError(f"打不开监听话筒 alsa:{self.device}（{exc}）；请检查话筒或 USB 声卡是否插好，"
                               "用 `arecord -L` 查看设备名，再写成 --monitor alsa:设备名") from exc

    def record(self, offsets: Sequence[float], window_s: float, started: float,
               stop: threading.Event) -> list[Capture]:
        captures = []
        for offset in offsets:
            if stop.wait(max(0.0, started + offset - WARM_UP_S - time.monotonic())):
                break
            if time.monotonic() > started + offset + window_s / 2:
                continue  # started too late to hear most of it (a slow start-up): fewer windows, said so
            samples = self._capture(started + offset, window_s, stop)
            if samples is None:
                break
            captures.append(Capture(offset, samples, CAPTURE_RATE))
        return captures

    def _capture(self, start_at: float, seconds: float, stop: threading.Event) -> np.ndarray | None:
        """`seconds` of sound from `start_at` (monotonic), placed by the time the first block arrived."""
        chunks: list[np.ndarray] = []
        state = {"first": 0.0, "count": 0}
        done = threading.Event()

        def sink():  # type: ignore[no-untyped-def]
            while True:
                data = yield
                if done.is_set():
                    continue
                block = np.frombuffer(bytes(data), dtype=np.int16)
                if not chunks:
                    state["first"] = time.monotonic() - len(block) / CAPTURE_RATE
                chunks.append(block)
                state["count"] += len(block)
                if state["first"] + state["count"] / CAPTURE_RATE >= start_at + seconds:
                    done.set()

        device = self._open()
        gen = sink()
        next(gen)
        try:
            device.start(gen)
            deadline = start_at + seconds + 3.0
            while not done.is_set() and not stop.is_set() and time.monotonic() < deadline:
                done.wait(0.1)
        except self._ma.MiniaudioError as exc:
            raise MonitorError(f"监听话筒 alsa:{self.device} 录音中途出错（{exc}）") from exc
        finally:
            self._halt(device)
        if stop.is_set() or not done.is_set():
            if not stop.is_set():
                raise MonitorError(f"监听话筒 alsa:{self.device} 没有送来声音；请检查话筒和 ALSA 设置")
            return None
        pcm = np.concatenate(chunks).astype(np.float32) / 32768.0
        skip = int(round((start_at - state["first"]) * CAPTURE_RATE))
        if skip < 0:  # the device started late: the first moments are missing
            pcm, skip = np.concatenate([np.zeros(-skip, np.float32), pcm]), 0
        return pcm[skip:skip + int(seconds * CAPTURE_RATE)]

    def _halt(self, device) -> None:  # type: ignore[no-untyped-def]
        """Stop the device's thread, then close it (miniaudio's own stop() drops the callback first, and a
        block arriving in between raises inside its callback)."""
        if device.running:
            self._ma.lib.ma_device_stop(device._device)
            device.running = False
        device.close()

    def release(self) -> None:
        pass  # nothing is kept between windows


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """A WAV file as mono float32 (-1..1) and its sample rate; MonitorError naming the file if unreadable."""
    from scipy.io import wavfile

    try:
        rate, data = wavfile.read(str(path))
    except (OSError, ValueError, EOFError) as exc:
        raise MonitorError(f"{path}：读不出这个 WAV 录音（{exc}）；请换成 16 位或浮点 PCM 的 WAV 文件") from exc
    x = np.asarray(data).astype(np.float32)
    if x.ndim > 1:
        x = x.mean(axis=1)
    if data.dtype == np.uint8:
        x = (x - 128.0) / 128.0
    elif data.dtype in (np.int16, np.int32):
        x /= float(np.iinfo(data.dtype).max) + 1.0
    return x, int(rate)


class FileSource:
    """Recordings instead of a microphone: one WAV for every play, or a folder consumed one WAV per play."""

    def __init__(self, path: Path) -> None:
        if not path.exists():
            raise MonitorError(f"--monitor file:{path}：这个文件或目录不存在；请先建好（测试时把录音 WAV 放进去）")
        if path.is_file() and path.suffix.lower() != ".wav":
            raise MonitorError(f"--monitor file:{path}：须是 WAV 录音文件，或放 WAV 录音的目录")
        self.path = path
        self._taken: Path | None = None

    def record(self, offsets: Sequence[float], window_s: float, started: float,
               stop: threading.Event) -> list[Capture]:
        if self.path.is_dir():
            found = sorted(p for p in self.path.iterdir() if p.suffix.lower() == ".wav" and p.is_file())
            if not found:
                return []
            self._taken = found[0]
        samples, rate = read_wav(self._taken or self.path)
        captures = []
        for offset in offsets:
            window = samples[int(offset * rate):int((offset + window_s) * rate)]
            if len(window):
                captures.append(Capture(offset, window, rate))
        return captures

    def release(self) -> None:
        if self._taken is not None:
            self._taken.unlink(missing_ok=True)  # a folder's recording stood for one play's capture
            self._taken = None


def prove_play(program: Path | Reference, source: Source, started: float, length_s: float, *,
               stop: threading.Event | None = None, windows: int = WINDOWS,
               window_s: float = WINDOW_S) -> ProofResult | None:
    """Capture the windows of one play that began at `started` (time.monotonic()), match them, drop the audio.

    None when `stop` was set before every window was captured (the play was cut short).
    MonitorError when the source failed; AudioError when the program cannot be decoded.
    """
    stop = stop or threading.Event()
    offsets = plan_windows(length_s, windows=windows, window_s=window_s)
    try:
        captures = source.record(offsets, window_s, started, stop)
        if stop.is_set():
            return None
        reference = program if isinstance(program, Reference) else Reference.from_file(program)
        result = match(reference, captures)
    finally:
        source.release()
    del captures  # nothing of the sound outlives the match
    if captures_missing := len(offsets) - len(result.windows):
        result = not_heard(f"只录到 {len(result.windows)} 段监听录音，应有 {len(offsets)} 段（少了 {captures_missing} 段）"
                           f"{'：' + result.reason if result.reason else ''}", result.windows)
    return result


class PlayMonitor:
    """`prove_play` in a thread beside the player: start() when the play starts, result() after it ends."""

    def __init__(self, source: Source, program: Path, length_s: float, started: float) -> None:
        self.source, self.program, self.length_s, self.started = source, program, length_s, started
        self._stop = threading.Event()
        self._result: ProofResult | None = None
        self._error: Exception | None = None
        self._thread = threading.Thread(target=self._run, name="proof-of-air", daemon=True)

    def start(self) -> PlayMonitor:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self._result = prove_play(self.program, self.source, self.started, self.length_s, stop=self._stop)
        except AudioError as exc:  # MonitorError included: kept for result() to raise in the caller's thread
            self._error = exc

    def cancel(self) -> None:
        """Drop this play's proof (it was cut short); the thread ends at its next wait."""
        self._stop.set()

    def result(self, timeout_s: float = 30.0) -> ProofResult | None:
        """The verdict once every window is matched; None if cancelled or not done within `timeout_s`."""
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            self._stop.set()
            return None
        if self._error is not None:
            raise self._error
        return self._result


# --- the process the station box runs -------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m outreach.audio.monitor",
                                     description="播出监听：用喇叭旁的话筒核对正在播的节目，只输出比对数值，不保存录音。")
    parser.add_argument("command", choices=("check", "prove"), help="check：只检查监听来源能否打开；prove：监听一次播出")
    parser.add_argument("--monitor", required=True, help="alsa:设备名，或 file:路径（测试用）")
    parser.add_argument("--program", type=Path, help="正在播的节目文件（MP3）")
    parser.add_argument("--length", type=float, help="节目长度（秒）")
    parser.add_argument("--started", type=float, help="开始播出时的 time.monotonic() 值")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        source = open_source(args.monitor)
        if args.command == "check":
            return 0
        if args.program is None or args.length is None or args.started is None:
            raise MonitorError("prove 须给出 --program、--length 和 --started")
        result = prove_play(args.program, source, args.started, args.length)
    except AudioError as exc:
        print(f"错误：{exc}", file=sys.stderr, flush=True)
        return 1
    print(json.dumps(result.to_dict() if result else None, ensure_ascii=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
