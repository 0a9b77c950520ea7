"""Recordings as scripts: a person's voice (say, a notice in the local dialect) uploaded in place of TTS.

`add_recording` checks the file (it decodes, is not silent, has a sane length), stores it beside
the scripts as recordings/<id>-<sha>.<ext>, switches the script to `engine: recording` (which
voids an approval: the seal covers the recording's sha256) and records the step in the trail.
The web upload and `outreach scripts add-recording` both call it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine

from outreach.audio.recordings import probe_recording, recording_extension
from outreach.authoring.review import record
from outreach.content.script_model import RECORDINGS_DIR, Script, recording_name
from outreach.content.script_writer import set_recording
from outreach.files import atomic_path, sha256_file

__all__ = ["Added", "add_recording"]


@dataclass(frozen=True)
class Added:
    """A recording now in place: the script as it stands, the recording's length, and whether it voided an approval."""

    script: Script
    seconds: float
    voided: bool


def add_recording(engine: Engine, script_path: Path, source: Path, filename: str, *, actor: str,
                  now: datetime) -> Added:
    """Make the script at `script_path` play the recording in `source` (uploaded as `filename`); record who and when.

    The file is checked before anything is written, then copied atomically beside the scripts;
    the script is rewritten in one atomic rename; recordings it no longer uses are removed. A
    script whose recording is missing or was replaced by hand can be mended this way.

    Raises:
        AudioError: not an MP3/WAV/M4A, too big, undecodable, silent, too short or too long.
        ScriptError: the script file has other problems, or already plays this very recording.
        OutputError: the recordings folder cannot be written.
    """
    ext = recording_extension(filename)
    seconds = probe_recording(source, ext, shown=Path(filename).name)
    sha = sha256_file(source)
    script_path = Path(script_path)
    name = recording_name(script_path.stem, sha, ext)
    target = script_path.parent / name
    with atomic_path(target) as tmp:  # OutputError (disk full, read-only) names the file and the fix
        shutil.copyfile(source, tmp)
    try:
        changed = set_recording(script_path, name, sha)
    except BaseException:
        if name not in script_path.read_text(encoding="utf-8-sig", errors="replace"):
            target.unlink(missing_ok=True)
        raise
    _remove_others(script_path.parent, changed)
    record(engine, changed.id, "recorded", actor, now, content_hash=changed.content_hash, audio_sha256=sha,
           detail=f"录音 {Path(filename).name}，{seconds:.0f} 秒")
    return Added(changed, seconds, voided=changed.edited_after_approval)


def _remove_others(folder: Path, script: Script) -> None:
    """Delete the script's earlier recordings (recordings/<id>-<sha12>.*), keeping the one it plays now."""
    keep = Path(script.recording or "").name
    for old in (folder / RECORDINGS_DIR).glob(f"{script.id}-*.*"):
        stem = old.stem[len(script.id) + 1:]
        if old.name != keep and len(stem) == 12 and all(c in "0123456789abcdef" for c in stem):
            old.unlink(missing_ok=True)
