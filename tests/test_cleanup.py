"""Clean after a crash: stale `.part` files and temp folders go, a live process's fresh ones stay."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from outreach.cli import cli
from outreach.files import (atomic_path, clean_after_crash, process_start, remove_stale_parts,
                            remove_stale_temp_dirs, temp_dir)

HOUR_AGO = time.time() - 3600


def touch(path: Path, at: float, data: bytes = b"half") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_bytes(data) if not path.name.startswith("outreach-") else path.mkdir()
    os.utime(path, (at, at))
    return path


def dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temp_names_carry_the_process_id(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "a.mp3") as tmp:
        assert tmp.name.startswith(f".a.mp3.{os.getpid()}.") and tmp.name.endswith(".part")
        tmp.write_bytes(b"x")
    assert oct((tmp_path / "a.mp3").stat().st_mode & 0o777) == "0o644"
    with temp_dir("concat") as name:
        assert Path(name).name.startswith(f"outreach-concat-{os.getpid()}-")


def test_stale_parts_of_dead_processes_go_fresh_and_live_ones_stay(tmp_path: Path) -> None:
    pid = dead_pid()
    stale = touch(tmp_path / "programs" / f".program-x.mp3.{pid}.ab12.part", HOUR_AGO)
    legacy = touch(tmp_path / "packs" / "t" / "v" / ".2026-12-01_morning.mp3.q1w2e3.part", HOUR_AGO)
    fresh = touch(tmp_path / "programs" / f".program-y.mp3.{pid}.cd34.part", time.time() + 60)
    writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        born = process_start(writer.pid)
        assert born is not None and born <= time.time() + 1
        # Written by a live process after it started; we look as a command starting 10 s later would.
        live = touch(tmp_path / "programs" / f".program-z.mp3.{writer.pid}.ef56.part", born + 0.5)
        other = touch(tmp_path / "programs" / "notes.part", HOUR_AGO)  # not one of ours: no hidden temp name
        removed = remove_stale_parts(tmp_path, before=time.time() + 10)
        assert sorted(removed) == sorted([stale, legacy])
        assert fresh.exists() and live.exists() and other.exists()
    finally:
        writer.kill()
        writer.wait()


def test_a_reused_process_id_does_not_protect_an_old_file(tmp_path: Path) -> None:
    # Our parent is alive, but it started after this file was written: the writer was another process.
    born = process_start(os.getppid())
    old = touch(tmp_path / f".a.mp3.{os.getppid()}.zz99.part", born - 600)
    assert remove_stale_parts(tmp_path) == [old]


def test_stale_temp_folders_go_busy_and_foreign_ones_stay(tmp_path: Path) -> None:
    pid = dead_pid()
    crashed = touch(tmp_path / f"outreach-tts-{pid}-abc", HOUR_AGO)
    touch(crashed / "speech.wav", HOUR_AGO, b"\0" * 4096)
    os.utime(crashed, (HOUR_AGO, HOUR_AGO))
    legacy = touch(tmp_path / "outreach-concat-q1w2", HOUR_AGO)
    busy = touch(tmp_path / f"outreach-tts-{pid}-def", HOUR_AGO)
    touch(busy / "speech.wav", time.time() + 5)  # something inside is being written now
    os.utime(busy, (HOUR_AGO, HOUR_AGO))
    foreign = touch(tmp_path / "pytest-of-someone", HOUR_AGO, b"")
    removed = remove_stale_temp_dirs(tmp_path)
    assert sorted(removed) == sorted([crashed, legacy])
    assert busy.exists() and foreign.exists()


def test_every_command_cleans_the_workspace_on_start(workspace: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "systmp"))
    pid = dead_pid()
    parts = [touch(workspace / "build" / "programs" / f".program-a.mp3.{pid}.x1.part", HOUR_AGO),
             touch(workspace / "build" / "clips" / f".fraud-96110-abc.mp3.{pid}.x2.part", HOUR_AGO),
             touch(workspace / "packs" / "t_镇" / "v_村" / f".2026-12-01_0630_早间.mp3.{pid}.x3.part", HOUR_AGO)]
    tmpdir = touch(tmp_path / "systmp" / f"outreach-tts-{pid}-zz", HOUR_AGO)
    result = CliRunner().invoke(cli, ["scripts", "check", "-w", str(workspace)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert not any(p.exists() for p in parts) and not tmpdir.exists()


def test_a_killed_export_leaves_parts_that_the_next_command_removes(tmp_path: Path) -> None:
    """A real process writing through atomic_path is killed with SIGKILL; the next run cleans up."""
    target = tmp_path / "build" / "programs" / "program-x.mp3"
    code = ("import sys, time\nfrom pathlib import Path\nfrom outreach.files import atomic_path, temp_dir\n"
            "d = temp_dir('concat'); Path(d.name, 'list.txt').write_text('x')\n"
            f"with atomic_path(Path({str(target)!r})) as tmp:\n"
            "    tmp.write_bytes(b'half'); print(d.name, flush=True); time.sleep(60)\n")
    (tmp_path / "systmp").mkdir()
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "TMPDIR": str(tmp_path / "systmp")})
    folder = Path(proc.stdout.readline().strip())
    [part] = list(target.parent.glob("*.part"))
    # While the writer lives, nothing of it is touched even though it is older than a new start.
    later = time.time() + 10
    assert clean_after_crash([tmp_path / "build"], temp_root=tmp_path / "systmp", before=later) == []
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert part.exists() and folder.exists() and not target.exists()
    removed = clean_after_crash([tmp_path / "build"], temp_root=tmp_path / "systmp", before=later)
    assert sorted(removed) == sorted([part, folder])
