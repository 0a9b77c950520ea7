"""Program audio: join pre-encoded clips into one MP3 per distinct program.

Clips share one MP3 format (the mastering profile), so a program is joined by
ffmpeg's concat demuxer with `-c copy`: no decode, no re-encode. Programs with
the same clips are built once, under a name derived from their content, and
reused for every village and day that airs them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from outreach.audio.ffmpeg import run_ffmpeg
from outreach.config import Config
from outreach.errors import DeliveryError
from outreach.files import atomic_path, temp_dir


def gap_clip(config: Config, gap_s: float) -> Path:
    """A silent MP3 of `gap_s` seconds in the clips' exact format (built once)."""
    p = config.profile
    path = config.build_path / "programs" / f"gap-{gap_s:.2f}s-{p.sample_rate}-{p.bitrate_kbps}k.mp3"
    if not path.is_file():
        with atomic_path(path) as tmp:
            run_ffmpeg(["-f", "lavfi", "-i", f"anullsrc=r={p.sample_rate}:cl=mono", "-t", f"{gap_s}",
                        "-c:a", "libmp3lame", "-b:a", f"{p.bitrate_kbps}k", "-f", "mp3", str(tmp)],
                       what=f"{path}: 生成静音")
    return path


def program_audio(config: Config, clips: Sequence[Path], *, gap_s: float = 1.0) -> Path:
    """The MP3 of clips joined with gaps; built on first use, then reused.

    Raises DeliveryError if a clip is missing or corrupt (ffmpeg cannot read it).
    """
    if not clips:
        raise DeliveryError("节目里至少要有一条录音")
    for clip in clips:
        if not clip.is_file() or clip.stat().st_size == 0:
            raise DeliveryError(f"{clip}: 录音不存在或是空的；请重新运行 `outreach render`")
    name = hashlib.sha256(json.dumps([c.name for c in clips] + [gap_s]).encode()).hexdigest()[:20]
    out = config.build_path / "programs" / f"program-{name}.mp3"
    if out.is_file():
        return out
    gap = gap_clip(config, gap_s) if gap_s > 0 else None
    parts: list[Path] = []
    for i, clip in enumerate(clips):
        if i and gap:
            parts.append(gap)
        parts.append(clip)
    with temp_dir("concat") as tmp_dir:
        listing = Path(tmp_dir) / "list.txt"
        listing.write_text("".join(f"file '{p.resolve()}'\n" for p in parts), encoding="utf-8")
        with atomic_path(out) as tmp:
            try:
                run_ffmpeg(["-f", "concat", "-safe", "0", "-i", str(listing), "-map", "0:a", "-c", "copy",
                            "-map_metadata", "-1", "-f", "mp3", str(tmp)], what=f"{out}: 拼接录音")
            except Exception as exc:
                raise DeliveryError(f"无法把录音拼接成节目：{exc}；可能有录音已损坏，"
                                    "请用 `outreach render --force` 重新生成") from exc
    return out


