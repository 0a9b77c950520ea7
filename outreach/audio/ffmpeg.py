"""The bundled ffmpeg (imageio-ffmpeg) and small helpers to run it.

imageio-ffmpeg ships ffmpeg with libmp3lame but no ffprobe, so pydub is pointed
at that ffmpeg and every decode names its input format explicitly.
"""

from __future__ import annotations

import functools
import subprocess
import warnings
from pathlib import Path

with warnings.catch_warnings():
    # pydub looks for ffmpeg on PATH at import; we point it at the bundled one below.
    warnings.filterwarnings("ignore", message="Couldn't find ffmpeg", category=RuntimeWarning)
    from pydub import AudioSegment
    from pydub.generators import Sine  # noqa: F401  (re-exported for outreach.audio)

from outreach.errors import AudioError


@functools.cache
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary that imageio-ffmpeg installed."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@functools.cache
def configure_pydub() -> None:
    """Point pydub at the bundled ffmpeg (it would otherwise look on PATH)."""
    AudioSegment.converter = ffmpeg_exe()
    AudioSegment.ffmpeg = ffmpeg_exe()


def run_ffmpeg(args: list[str], *, what: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run ffmpeg quietly with `args`; raise AudioError naming `what` on failure."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise AudioError(f"{what}: ffmpeg 运行超过 {timeout:.0f} 秒，已超时") from exc
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        raise AudioError(f"{what}: ffmpeg 出错（{tail}）")
    return proc


def decode_to_pcm(path: Path, *, fmt: str, sample_rate: int) -> bytes:
    """Decode `path` (container `fmt`, e.g. "mp3" or "wav") to mono s16le PCM."""
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-f", fmt, "-i", str(path),
         "-ac", "1", "-ar", str(sample_rate), "-f", "s16le", "-"],
        capture_output=True,
        timeout=600,
    )
    if proc.returncode != 0:
        raise AudioError(f"{path}: 无法按 {fmt} 格式解码（{proc.stderr.decode(errors='replace').strip()[-200:]}）")
    return proc.stdout
