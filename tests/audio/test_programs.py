"""Program assembly (concat, no re-encode) and USB-stick pack export."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlmodel import select

from outreach.audio.mastering import measure
from outreach.audio.programs import program_audio
from outreach.audio.render import verified_clip
from outreach.cli import cli
from outreach.config import TZ, load_config
from outreach.db import session
from outreach.delivery.usb.export import export_days
from outreach.models import Broadcast, BroadcastStatus
from outreach.planning.workspace import load, open_database, plan_days

DAY = "2026-12-01"


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def export(*args: str):
    """`outreach export` of a past day (DAY) into a folder the test has not made."""
    return run("export", "--past", "--mkdir", *args)


@pytest.mark.slow
def test_program_joins_clips_with_gaps_without_reencoding(rendered_workspace: Path) -> None:
    loaded = load(load_config(rendered_workspace))
    clips = [verified_clip(loaded.config, loaded.scripts[sid]) for sid in ("traffic-helmet", "fraud-96110")]
    out = program_audio(loaded.config, clips, gap_s=1.0)
    parts = [measure(c).duration_s for c in clips]
    joined = measure(out)
    assert joined.duration_s == pytest.approx(sum(parts) + 1.0, abs=0.3)
    assert joined.lufs == pytest.approx(-16.0, abs=1.0) and joined.true_peak_db <= -1.5
    # Same clips -> the very same file, built once.
    mtime = out.stat().st_mtime_ns
    assert program_audio(loaded.config, clips, gap_s=1.0) == out and out.stat().st_mtime_ns == mtime


@pytest.mark.slow
def test_export_writes_folders_playlists_and_manifest(rendered_workspace: Path, tmp_path: Path) -> None:
    out = tmp_path / "usb"
    result = export("--date", DAY, "--out", str(out), "--all", "-w", str(rendered_workspace))
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    files = manifest["files"]
    loaded = load(load_config(rendered_workspace))
    programs = plan_days(loaded, datetime.fromisoformat(DAY).date(), datetime.fromisoformat(DAY).date()).programs
    assert len(files) == len(programs)
    for entry in files:
        assert set(entry) >= {"path", "sha256", "duration_s", "village_id", "slot", "date"}
        path = out / entry["path"]
        assert not Path(entry["path"]).is_absolute() and path.is_file()
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
        label = {"morning": "早间", "evening": "晚间"}[entry["slot"]]
        assert path.name == f"{DAY}_{entry['start'].replace(':', '')}_{label}.mp3"
        village = loaded.registry.villages[entry["village_id"]]
        assert path.parent.name.startswith(village.id) and path.parent.parent.name.startswith(village.township_id)
    sample = out / files[0]["path"]
    assert measure(sample).duration_s == pytest.approx(files[0]["duration_s"], abs=1.5)
    playlist = (sample.parent / "playlist.m3u").read_text(encoding="utf-8").splitlines()
    assert playlist[0] == "#EXTM3U" and sample.name in playlist


@pytest.mark.slow
def test_reexport_rewrites_nothing_and_resumes_after_a_crash(rendered_workspace: Path, tmp_path: Path) -> None:
    out = tmp_path / "usb"
    assert export("--date", DAY, "--out", str(out), "-w", str(rendered_workspace)).exit_code == 0
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    again = export("--date", DAY, "--out", str(out), "--json", "-w", str(rendered_workspace))
    assert again.exit_code == 0
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before
    # A crash mid-export: one file lost, a temporary left behind. The next run completes the pack.
    victim = next(p for p in before if p.suffix == ".mp3")
    victim.unlink()
    (victim.parent / f".{victim.name}.crash.part").write_bytes(b"half")
    assert export("--date", DAY, "--out", str(out), "-w", str(rendered_workspace)).exit_code == 0
    assert victim.is_file()
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    entry = next(f for f in manifest["files"] if out / f["path"] == victim)
    assert hashlib.sha256(victim.read_bytes()).hexdigest() == entry["sha256"]


@pytest.mark.slow
def test_export_logs_offline_villages_as_exported(rendered_workspace: Path, tmp_path: Path) -> None:
    loaded = load(load_config(rendered_workspace))
    engine = open_database(loaded)
    day = datetime.fromisoformat(DAY).date()
    report = export_days(loaded, engine, day, day, tmp_path / "usb", now=datetime(2026, 11, 30, 20, tzinfo=TZ),
                         village_ids=sorted(loaded.registry.villages))
    assert not report.failures
    with session(engine) as s:
        rows = s.exec(select(Broadcast).where(Broadcast.date == day)).all()
    offline = {v.id for v in loaded.registry.villages.values() if v.speaker == "offline"}
    assert rows and offline
    for row in rows:
        want = BroadcastStatus.EXPORTED if row.village_id in offline else BroadcastStatus.PLANNED
        assert row.status == want, row
        if row.village_id in offline:
            assert row.program_sha256 and row.engine == loaded.config.render.engine


@pytest.mark.slow
def test_default_export_is_for_usb_fed_villages(rendered_workspace: Path, tmp_path: Path) -> None:
    loaded = load(load_config(rendered_workspace))
    offline = {v.id for v in loaded.registry.villages.values() if v.speaker == "offline"}
    out = tmp_path / "usb"
    assert export("--date", DAY, "--out", str(out), "-w", str(rendered_workspace)).exit_code == 0
    exported = {f["village_id"] for f in json.loads((out / "manifest.json").read_text(encoding="utf-8"))["files"]}
    assert exported == offline
    # A county that runs in export mode feeds every village by USB stick.
    toml = rendered_workspace / "outreach.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace('mode = "play"', 'mode = "export"'), encoding="utf-8")
    out_all = tmp_path / "usb-all"
    assert export("--date", DAY, "--out", str(out_all), "-w", str(rendered_workspace)).exit_code == 0
    everyone = {f["village_id"] for f in json.loads((out_all / "manifest.json").read_text(encoding="utf-8"))["files"]}
    assert everyone == set(loaded.registry.villages)


@pytest.mark.slow
def test_corrupt_clip_fails_only_its_programs(rendered_workspace: Path, tmp_path: Path) -> None:
    loaded = load(load_config(rendered_workspace))
    victim = verified_clip(loaded.config, loaded.scripts["fraud-96110"])
    data = bytearray(victim.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = b"\0" * 64
    victim.write_bytes(bytes(data))
    out = tmp_path / "usb"
    result = export("--date", DAY, "--to", str(datetime.fromisoformat(DAY).date() + timedelta(days=1)),
                 "--out", str(out), "-w", str(rendered_workspace))
    assert result.exit_code == 1
    assert "fraud-96110" in result.stderr and "corrupt" in result.stderr
    assert json.loads((out / "manifest.json").read_text(encoding="utf-8"))["files"], "healthy programs still exported"


def test_backwards_or_long_export_range_is_refused(workspace: Path, tmp_path: Path) -> None:
    backwards = run("export", "--date", "2026-12-05", "--to", "2026-12-01", "--out", str(tmp_path), "-w", str(workspace))
    assert backwards.exit_code == 1 and "前后颠倒" in backwards.stderr
    too_long = run("export", "--date", "2026-01-01", "--to", "2026-12-31", "--out", str(tmp_path), "-w", str(workspace))
    assert too_long.exit_code == 1 and "--date/--to" in too_long.stderr
