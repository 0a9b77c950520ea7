"""Uploaded recordings (engine: recording): which files are taken, and a check that one decodes and has a sane length.

A recording is mastered by the same chain as a synthesised clip (audio/render.py); this module
only decides whether a file is a usable recording, before it is stored beside the scripts.
"""

from __future__ import annotations

from array import array
from pathlib import Path

from outreach.audio.ffmpeg import decode_to_pcm
from outreach.content.script_model import RECORDING_EXTENSIONS
from outreach.errors import AudioError

__all__ = ["MAX_RECORDING_BYTES", "RECORDING_SECONDS", "demuxer", "probe_recording", "recording_extension",
           "recording_seconds"]

# A phone's WAV of four minutes (mono, 44.1 kHz) is about 21 MB; an MP3 or M4A a tenth of that.
MAX_RECORDING_BYTES = 30_000_000
# Shorter than a second is a slip of the finger; longer than four minutes does not fit a slot's program.
RECORDING_SECONDS = (1.0, 240.0)
# ffmpeg's demuxer for each extension (an .m4a is an MP4 container).
_DEMUXER = {"mp3": "mp3", "wav": "wav", "m4a": "mov"}
_PROBE_RATE = 16000
# Peaks under this (16-bit full scale 32767; about -60 dBFS) are silence: nothing was recorded.
_SILENT_PEAK = 33
_FORMATS = "、".join(ext.upper() for ext in RECORDING_EXTENSIONS)


def recording_extension(filename: str) -> str:
    """The lower-case extension of an uploaded file name, if it is one we take.

    Raises:
        AudioError: the name has no extension or another one, with the formats taken.
    """
    ext = Path(filename).suffix.lower().lstrip(".")
    if ext not in RECORDING_EXTENSIONS:
        shown = f"“{Path(filename).name}”" if filename else "这个文件"
        raise AudioError(f"{shown}不是 {_FORMATS} 录音；请上传 {_FORMATS} 文件（手机录音软件一般可以导出 MP3 或 M4A）")
    return ext


def demuxer(ext: str) -> str:
    """ffmpeg's input format for a recording with extension `ext`."""
    return _DEMUXER[ext]


def recording_seconds(path: Path, ext: str) -> float:
    """The length in seconds of a recording file; AudioError when ffmpeg cannot decode it."""
    return len(_pcm(path, ext, Path(path).name)) / 2 / _PROBE_RATE


def _pcm(path: Path, ext: str, shown: str) -> bytes:
    try:
        return decode_to_pcm(Path(path), fmt=demuxer(ext), sample_rate=_PROBE_RATE)
    except AudioError:
        raise AudioError(f"“{shown}”无法解码，不是完好的 {ext.upper()} 录音；请重新导出录音（{_FORMATS}）后再上传") from None


def probe_recording(path: Path, ext: str, *, shown: str | None = None) -> float:
    """Check that `path` is a usable recording: not too big, decodes, not silent, of a sane length.

    `shown` is the name the user knows the file by (the uploaded file name). Returns its seconds.

    Raises:
        AudioError: naming the file, what is wrong and what to do.
    """
    path = Path(path)
    shown = shown or path.name
    size = path.stat().st_size
    if size > MAX_RECORDING_BYTES:
        raise AudioError(f"“{shown}”有 {size / 1e6:.1f} MB，超过 {MAX_RECORDING_BYTES // 1_000_000} MB 的上限；"
                         "请剪短，或导出为 MP3/M4A 再上传")
    pcm = _pcm(path, ext, shown)
    seconds = len(pcm) / 2 / _PROBE_RATE
    low, high = RECORDING_SECONDS
    if seconds < low:
        raise AudioError(f"“{shown}”只有 {seconds:.1f} 秒，太短了；请录完整的通知（至少 {low:.0f} 秒）")
    if seconds > high:
        raise AudioError(f"“{shown}”有 {seconds:.0f} 秒，超过 {high / 60:.0f} 分钟；大喇叭的节目放不下，请剪短或分成两篇稿件")
    samples = array("h", pcm[: len(pcm) // 2 * 2])
    if max(max(samples), -min(samples)) < _SILENT_PEAK:
        raise AudioError(f"“{shown}”里没有声音（整段都是静音）；请检查话筒后重新录音")
    return seconds
