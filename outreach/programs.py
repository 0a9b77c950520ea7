"""Program audio and USB-stick packs: join pre-encoded clips, export per village.

Clips share one MP3 format (the mastering profile), so a program is joined by
ffmpeg's concat demuxer with `-c copy`: no decode, no re-encode. Programs with
the same clips are built once, under a name derived from their content, and
reused for every village and day that airs them.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from outreach.config import Config
from outreach.errors import DeliveryError, OutputError
from outreach.files import atomic_path, describe_os_error, sha256_file, write_text_if_changed
from outreach.media import run_ffmpeg

MANIFEST = "manifest.json"
PLAYLIST = "playlist.m3u"


def gap_clip(config: Config, gap_s: float) -> Path:
    """A silent MP3 of `gap_s` seconds in the clips' exact format (built once)."""
    p = config.profile
    path = config.build_path / "programs" / f"gap-{gap_s:.2f}s-{p.sample_rate}-{p.bitrate_kbps}k.mp3"
    if not path.is_file():
        with atomic_path(path) as tmp:
            run_ffmpeg(["-f", "lavfi", "-i", f"anullsrc=r={p.sample_rate}:cl=mono", "-t", f"{gap_s}",
                        "-c:a", "libmp3lame", "-b:a", f"{p.bitrate_kbps}k", "-f", "mp3", str(tmp)],
                       what=f"{path}: silence")
    return path


def program_audio(config: Config, clips: Sequence[Path], *, gap_s: float = 1.0) -> Path:
    """The MP3 of clips joined with gaps; built on first use, then reused.

    Raises DeliveryError if a clip is missing or corrupt (ffmpeg cannot read it).
    """
    if not clips:
        raise DeliveryError("a program needs at least one clip")
    for clip in clips:
        if not clip.is_file() or clip.stat().st_size == 0:
            raise DeliveryError(f"{clip}: clip is missing or empty; run `outreach render` again")
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
    with tempfile.TemporaryDirectory(prefix="outreach-concat-") as tmp_dir:
        listing = Path(tmp_dir) / "list.txt"
        listing.write_text("".join(f"file '{p.resolve()}'\n" for p in parts), encoding="utf-8")
        with atomic_path(out) as tmp:
            try:
                run_ffmpeg(["-f", "concat", "-safe", "0", "-i", str(listing), "-map", "0:a", "-c", "copy",
                            "-map_metadata", "-1", "-f", "mp3", str(tmp)], what=f"{out}: joining clips")
            except Exception as exc:
                raise DeliveryError(f"cannot join clips into a program: {exc}; a clip may be corrupt, "
                                    "re-render with `outreach render --force`") from exc
    return out


@dataclass(frozen=True)
class PackFile:
    """One file of an export, as listed in manifest.json."""

    path: str
    sha256: str
    duration_s: float
    village_id: str
    slot: str
    date: str


@dataclass
class ExportReport:
    """What an export wrote, skipped as unchanged, or failed on."""

    written: list[PackFile] = field(default_factory=list)
    unchanged: list[PackFile] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def files(self) -> list[PackFile]:
        return sorted(self.written + self.unchanged, key=lambda f: f.path)


@dataclass(frozen=True)
class PackItem:
    """A program to place in a pack: where it goes and the audio it is."""

    rel_path: str
    audio: Path
    duration_s: float
    village_id: str
    slot: str
    date: str


def _place(item: PackItem, digest: str, out_dir: Path, existing: Mapping[str, PackFile]) -> tuple[PackFile, bool]:
    """Copy a program (whose SHA-256 is `digest`) into the pack atomically unless an identical file is there."""
    target = out_dir / item.rel_path
    entry = PackFile(item.rel_path, digest, round(item.duration_s, 2), item.village_id, item.slot, item.date)
    known = existing.get(item.rel_path)
    if target.is_file() and known is not None and known.sha256 == digest and target.stat().st_size == item.audio.stat().st_size:
        return entry, False
    if target.is_file() and known is None and sha256_file(target) == digest:
        return entry, False
    with atomic_path(target) as tmp:
        with item.audio.open("rb") as src, tmp.open("wb") as dst:
            while block := src.read(1 << 20):
                dst.write(block)
    return entry, True


def read_manifest(out_dir: Path) -> dict[str, PackFile]:
    """The files listed in `out_dir`/manifest.json, by pack-relative path; {} when there is no manifest.

    An entry that is not a file record is left out. Raises OutputError naming
    the manifest when it cannot be read or has no "files" list.
    """
    path = out_dir / MANIFEST
    if not path.is_file():
        return {}
    try:
        files = json.loads(path.read_text(encoding="utf-8"))["files"]
        if not isinstance(files, list):
            raise TypeError("files is not a list")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise OutputError(f"{path}: {exc}") from exc
    out: dict[str, PackFile] = {}
    for f in files:
        try:
            entry = PackFile(str(f["path"]), str(f.get("sha256", "")), float(f.get("duration_s", 0)),
                             str(f.get("village_id", "")), str(f.get("slot", "")), str(f.get("date", "")))
        except (KeyError, TypeError, ValueError):
            continue
        out[entry.path] = entry
    return out


SLOT_LABELS = {"morning": "早间", "evening": "晚间"}


def _playlists(out_dir: Path, files: Iterable[PackFile]) -> None:
    """One M3U per village folder, listing every program file there in order."""
    folders: dict[Path, list[PackFile]] = {}
    for f in files:
        folders.setdefault((out_dir / f.path).parent, []).append(f)
    for folder, entries in folders.items():
        lines = ["#EXTM3U"]
        for f in sorted(entries, key=lambda e: e.path):
            lines += [f"#EXTINF:{round(f.duration_s)},{f.date} {SLOT_LABELS.get(f.slot, f.slot)}", Path(f.path).name]
        write_text_if_changed(folder / PLAYLIST, "\n".join(lines) + "\n")


def export_pack(items: Sequence[PackItem], out_dir: Path) -> ExportReport:
    """Write pack files, playlists and manifest.json; idempotent and resumable.

    Every file is written to a temporary name and renamed, so a crash leaves
    only whole files, and a re-run skips what is already there unchanged.
    Failures are collected; the rest of the pack is still written.
    """
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(describe_os_error(out_dir, exc)) from exc
    try:
        existing = read_manifest(out_dir)
    except OutputError:
        existing = {}  # an unreadable manifest is rewritten from the files this export places
    report = ExportReport()
    digests: dict[Path, str] = {}  # many villages share one program file: hash each once
    for item in items:
        try:
            if item.audio not in digests:
                digests[item.audio] = sha256_file(item.audio)
            entry, wrote = _place(item, digests[item.audio], out_dir, existing)
        except (OutputError, OSError) as exc:
            report.failures.append((item.rel_path, str(exc)))
            continue
        (report.written if wrote else report.unchanged).append(entry)
    merged = {p: f for p, f in existing.items() if (out_dir / p).is_file()}
    merged.update({f.path: f for f in report.files})
    manifest = {"files": [vars(f) for f in sorted(merged.values(), key=lambda f: f.path)]}
    _playlists(out_dir, merged.values())
    write_text_if_changed(out_dir / MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=1) + "\n")
    return report


def pack_rel_path(township_id: str, township_name: str, village_id: str, village_name: str, day: str, slot: str) -> str:
    """`township/village/2026-12-01_morning.mp3`, with ids first so folders sort."""
    return os.path.join(f"{township_id}_{township_name}", f"{village_id}_{village_name}", f"{day}_{slot}.mp3")
