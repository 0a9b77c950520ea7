"""Audio outputs of a station: the sound card (miniaudio), a player command, or a file-writing fake for tests.

Each output plays an MP3 from a position until it ends or `stop` is set, and
returns the position reached, so an alert can cut in and the program resume.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Protocol

from outreach.station.protocol import StationError

SAMPLE_RATE = 22050  # the mastering profile's rate: no resampling on the box


def mp3_duration(path: Path) -> float:
    import miniaudio

    info = miniaudio.mp3_get_file_info(str(path))
    return float(info.duration)


class Output(Protocol):
    def play(self, path: Path, *, start_s: float, stop: threading.Event, label: str) -> float:
        """Play `path` from `start_s`; return the position (s) reached when it ended or was stopped."""


class _Decoded:
    """Decode an MP3 from a position in 0.1 s chunks of 16-bit mono PCM."""

    def __init__(self, path: Path, start_s: float) -> None:
        import miniaudio

        self.frames = miniaudio.stream_file(str(path), output_format=miniaudio.SampleFormat.SIGNED16, nchannels=1,
                                            sample_rate=SAMPLE_RATE, frames_to_read=SAMPLE_RATE // 10,
                                            seek_frame=int(start_s * SAMPLE_RATE))


class FileOutput:
    """The test output: writes the decoded PCM of each play to a file in real time (or `speed` x faster)
    and logs start, stop and end lines to `plays.jsonl`, so tests can measure what really aired."""

    def __init__(self, folder: Path, speed: float = 1.0) -> None:
        if not 0.1 <= speed <= 100:
            raise StationError(f"测试输出的倍速 {speed} 须在 0.1 到 100 之间")
        self.folder, self.speed = folder, speed
        folder.mkdir(parents=True, exist_ok=True)

    def _log(self, **fields: object) -> None:
        with (self.folder / "plays.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps(fields | {"t": time.time()}, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def play(self, path: Path, *, start_s: float, stop: threading.Event, label: str) -> float:
        self._log(event="start", label=label, file=path.name, position_s=round(start_s, 3))
        written = 0
        t0 = time.monotonic()
        with (self.folder / f"{label.replace('/', '_')}.pcm").open("ab") as out:
            for chunk in _Decoded(path, start_s).frames:
                if stop.is_set():
                    break
                out.write(chunk.tobytes())
                out.flush()
                written += len(chunk)
                lag = t0 + written / SAMPLE_RATE / self.speed - time.monotonic()
                if lag > 0 and stop.wait(lag):
                    break
        position = start_s + written / SAMPLE_RATE
        self._log(event="stop" if stop.is_set() else "end", label=label, file=path.name, position_s=round(position, 3))
        return position


# miniaudio's result codes (miniaudio.h) for a sound card that cannot be used; its own text is English.
_SOUND_CODES = {-6: "没有权限使用声卡", -19: "声卡正被别的程序占用", -23: "声卡正被别的程序占用",
                -200: "声卡不支持这种声音格式", -203: "没有可用的声音系统（ALSA）", -204: "没有找到声卡",
                -400: "声音系统（ALSA）初始化失败", -401: "声卡设备打不开", -402: "声卡设备启动失败"}


def sound_error(exc: BaseException) -> str:
    """A miniaudio error in Chinese with its code, e.g. `声卡设备打不开（miniaudio -401）`."""
    code = next((a for a in getattr(exc, "args", ()) if isinstance(a, int)), None)
    if code is None:
        return "声卡出错"
    return f"{_SOUND_CODES.get(code, '声卡出错')}（miniaudio {code}）"


class MiniaudioOutput:
    """The sound card through miniaudio (ALSA on a Linux box); `null=True` plays to nowhere in real time."""

    def __init__(self, *, null: bool = False) -> None:
        import miniaudio

        self._miniaudio = miniaudio
        self.backends = [miniaudio.Backend.NULL] if null else None
        try:  # fail at start-up, clearly, rather than at the first slot
            dev = miniaudio.PlaybackDevice(output_format=miniaudio.SampleFormat.SIGNED16, nchannels=1,
                                           sample_rate=SAMPLE_RATE, backends=self.backends)
            dev.close()
        except miniaudio.MiniaudioError as exc:
            raise StationError(f"打不开声音输出（{sound_error(exc)}）；请检查接功放的 USB/3.5 mm 声卡和 ALSA（`aplay -l`），"
                               "或改用 --player 命令") from exc

    def play(self, path: Path, *, start_s: float, stop: threading.Event, label: str) -> float:
        ma = self._miniaudio
        done = threading.Event()
        decoded = _Decoded(path, start_s).frames
        played = [0]

        def feed():  # type: ignore[no-untyped-def]
            required = yield b""
            for chunk in decoded:
                if stop.is_set():
                    break
                played[0] += len(chunk)
                required = yield chunk
            done.set()
            while True:
                yield b""

        gen = feed()
        next(gen)
        dev = ma.PlaybackDevice(output_format=ma.SampleFormat.SIGNED16, nchannels=1, sample_rate=SAMPLE_RATE,
                                backends=self.backends)
        try:
            dev.start(gen)
            while not done.is_set() and not stop.is_set():
                done.wait(0.1)
            if done.is_set():
                time.sleep(0.25)  # let the device drain its last buffer
        finally:
            dev.close()
        return start_s + played[0] / SAMPLE_RATE


class CommandOutput:
    """A player command (`--player "mpg123 -q {file}"`); `{start_s}` lets it resume after an alert."""

    def __init__(self, command: str) -> None:
        self.argv = shlex.split(command)
        if not any("{file}" in a for a in self.argv):
            raise StationError(f"--player {command!r} 里须写上 {{file}}，例如 --player 'mpg123 -q {{file}}'")

    def play(self, path: Path, *, start_s: float, stop: threading.Event, label: str) -> float:
        argv = [a.replace("{file}", str(path)).replace("{start_s}", f"{start_s:.2f}") for a in self.argv]
        t0 = time.monotonic()
        proc = subprocess.Popen(argv, start_new_session=True, stdin=subprocess.DEVNULL)
        while proc.poll() is None:
            if stop.wait(0.1):
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=10)
                break
        return start_s + (time.monotonic() - t0)


def make_output(spec: str | None, player: str | None) -> Output:
    """`--output sound|null|file:DIR[@SPEED]` or `--player CMD`."""
    if player:
        return CommandOutput(player)
    spec = spec or "sound"
    if spec == "sound":
        return MiniaudioOutput()
    if spec == "null":
        return MiniaudioOutput(null=True)
    if spec.startswith("file:"):
        folder, _, speed = spec[5:].partition("@")
        return FileOutput(Path(folder), float(speed or 1.0))
    raise StationError(f"--output {spec!r}：请用 sound、null 或 file:DIR[@SPEED]")
