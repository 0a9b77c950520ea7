"""USB packs a village secretary can use: airing order, tags, playlist, 播放说明, re-export, failures, safety."""

from __future__ import annotations

import json
import os
import stat
import time
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner
from mutagen.id3 import ID3
from sqlmodel import select

from outreach.audio.mastering import measure
from outreach.audio.render import plan_clip
from outreach.cli import cli
from outreach.config import load_config
from outreach.content.textnorm import load_lexicon
from outreach.db import session
from outreach.delivery.usb.packs import README, inside, pack_rel_path
from outreach.errors import OutputError
from outreach.files import process_start
from outreach.models import Broadcast, BroadcastStatus
from outreach.planning.workspace import load

OFFLINE = "dazhuang-05"  # 李家洼村, fed by USB stick
EARLY = "dazhuang-04"  # 王家庄村: its morning slot starts at 06:00


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def export(ws: Path, out: Path, *args: str):
    return run("export", "--out", str(out), "--mkdir", "--past", "-w", str(ws), *args)


def manifest(out: Path) -> list[dict]:
    return json.loads((out / "manifest.json").read_text(encoding="utf-8"))["files"]


def folder_of(out: Path, village_id: str) -> Path:
    [folder] = [p for p in out.glob(f"*/{village_id}_*") if p.is_dir()]
    return folder


def mp3s(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.mp3"))


@pytest.mark.slow
def test_pack_sorts_in_airing_order_with_tags_modes_and_instructions(rendered_workspace: Path, tmp_path: Path) -> None:
    out = tmp_path / "usb"
    result = export(rendered_workspace, out, "--date", "2026-12-01", "--to", "2026-12-02",
                    "--village", OFFLINE, "--village", EARLY)
    assert result.exit_code == 0, result.output
    assert result.stdout.count("\n") == 1 and "写入 8 个文件" in result.stdout  # one summary line
    folder = folder_of(out, OFFLINE)
    names = mp3s(folder)
    assert names == ["2026-12-01_0630_早间.mp3", "2026-12-01_1830_晚间.mp3",
                     "2026-12-02_0630_早间.mp3", "2026-12-02_1830_晚间.mp3"]
    assert mp3s(folder_of(out, EARLY))[0] == "2026-12-01_0600_早间.mp3"
    playlist = (folder / "playlist.m3u").read_text(encoding="utf-8").splitlines()
    assert [line for line in playlist if line.endswith(".mp3")] == names
    first = next(e for e in manifest(out) if e["path"].endswith(f"{folder.name}/{names[0]}"))
    assert playlist[1] == f"#EXTINF:{round(first['duration_s'])},李家洼村 12月1日 早间"

    loaded = load(load_config(rendered_workspace))
    entries = {e["path"]: e for e in manifest(out)}
    campaigns = {c.name for c in loaded.campaigns}
    for i, name in enumerate(names):
        path = folder / name
        entry = entries[f"{folder.parent.name}/{folder.name}/{name}"]
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        tags = ID3(path)
        assert tags.version[:2] == (2, 3)
        day = int(name[8:10])
        assert str(tags["TIT2"]) == f"李家洼村 12月{day}日 {name[16:18]}" == entry["title"]
        assert str(tags["TPE1"]) == "槐川县公安局交警大队"
        assert str(tags["TALB"]) in campaigns
        assert str(tags["TRCK"]) == f"{i + 1}/4"
        assert entry["scripts"] and str(tags["COMM::chi"]) == "；".join(entry["scripts"])
        assert entry["start"] == f"{name[11:13]}:{name[13:15]}"
        # Real audio behind the tag: ffmpeg decodes it to the planned length, at the mastered loudness.
        loud = measure(path)
        assert loud.duration_s == pytest.approx(entry["duration_s"], abs=1.5)
        assert loud.lufs == pytest.approx(-16.0, abs=1.5)

    raw = (folder / README).read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw
    text = raw.decode("utf-8-sig")
    assert "李家洼村" in text and "大庄镇" in text and OFFLINE in text
    for name in names:
        entry = entries[f"{folder.parent.name}/{folder.name}/{name}"]
        assert name in text and entry["start"] in text and all(title in text for title in entry["scripts"])
    assert "2026年12月1日  早间  06:30 开始  约 " in text
    assert "怎么播放" in text and "playlist.m3u" in text
    assert f"{OFFLINE},2026-12-01,早间,姓名" in text and "outreach confirm" in text


@pytest.mark.slow
def test_reexport_removes_earlier_days_of_that_village_and_says_so(rendered_workspace: Path, tmp_path: Path) -> None:
    out = tmp_path / "usb"
    assert export(rendered_workspace, out, "--date", "2026-12-01", "--to", "2026-12-03").exit_code == 0
    assert export(rendered_workspace, out, "--date", "2026-12-01", "--village", "hexi-01").exit_code == 0
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.mp3")}
    again = export(rendered_workspace, out, "--date", "2026-12-01", "--to", "2026-12-03")
    assert again.exit_code == 0 and "未变 60 个" in again.stdout and "删除旧节目 0 个" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.mp3")} == before  # unchanged plan: nothing rewritten

    result = export(rendered_workspace, out, "--date", "2026-12-04")
    assert result.exit_code == 0, result.output
    assert "删除旧节目 60 个" in result.stdout
    assert "删除更早日期的节目" in result.stderr and "2026-12-01_0630_早间.mp3" in result.stderr
    folder = folder_of(out, OFFLINE)
    assert mp3s(folder) == ["2026-12-04_0630_早间.mp3", "2026-12-04_1830_晚间.mp3"]
    playlist = (folder / "playlist.m3u").read_text(encoding="utf-8")
    assert "2026-12-01" not in playlist and "2026-12-04_0630_早间.mp3" in playlist
    assert "2026-12-01" not in (folder / README).read_text(encoding="utf-8-sig")
    files = manifest(out)
    # hexi-01 (networked, not in this export) keeps its spare pack; every other day is gone.
    assert {f["date"] for f in files if f["village_id"] != "hexi-01"} == {"2026-12-04"}
    assert mp3s(folder_of(out, "hexi-01")) == ["2026-12-01_0630_早间.mp3", "2026-12-01_1830_晚间.mp3"]
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.mp3")) == sorted(f["path"] for f in files)


@pytest.mark.slow
def test_export_renders_the_clips_it_needs_first(rendered_workspace: Path, tmp_path: Path) -> None:
    config = load_config(rendered_workspace)
    loaded = load(config)
    job = plan_clip(config, loaded.scripts["fraud-96110"], load_lexicon(config.lexicon_path))
    job.path.unlink()
    job.meta_path.unlink()
    out = tmp_path / "usb"
    result = export(rendered_workspace, out, "--date", "2026-12-01", "--to", "2026-12-02")
    assert result.exit_code == 0, result.output
    assert "新生成音频 1 条" in result.stdout and job.path.is_file()
    assert any("96110来电，一定要接" in f["scripts"] for f in manifest(out))


@pytest.mark.slow
def test_failures_are_one_line_each_and_no_empty_manifest(rendered_workspace: Path, tmp_path: Path) -> None:
    clips = sorted((rendered_workspace / "build" / "clips").glob("*.mp3"))
    for clip in clips:  # same size, different bytes: the render cache keeps it, verification refuses it
        data = bytearray(clip.read_bytes())
        data[len(data) // 2: len(data) // 2 + 64] = b"\0" * 64
        clip.write_bytes(bytes(data))
    out = tmp_path / "usb"
    result = export(rendered_workspace, out, "--date", "2026-12-01", "--to", "2026-12-07")
    assert result.exit_code == 1
    failed = [line for line in result.stderr.splitlines() if line.startswith("失败：")]
    assert failed and len(failed) == len(set(failed)) <= len(clips)
    assert all("没有可用的录音" in line and "已损坏" in line for line in failed)
    assert len(result.stderr) < 6000, "one line per distinct failure, not one per program"
    assert not (out / "manifest.json").exists()
    assert not list(out.rglob("*.mp3")) and not list(out.rglob("*.part"))


@pytest.mark.slow
def test_edited_urgent_script_is_left_out_reported_and_not_credited(rendered_workspace: Path, tmp_path: Path) -> None:
    path = rendered_workspace / "audio_scripts" / "fraud-96110.md"
    path.write_text(path.read_text(encoding="utf-8").replace("一定要接听，", "一定要接听！"), encoding="utf-8")
    out = tmp_path / "usb"
    result = export(rendered_workspace, out, "--date", "2026-12-01", "--to", "2026-12-02")
    assert result.exit_code == 0, result.output
    assert "警报：紧急宣传活动 'alert-fake-refund'：广播稿 'fraud-96110' 在 " in result.stderr
    assert "批准后又被修改，已退回草稿" in result.stderr
    assert "警告：“fraud-96110”没有放进" in result.stderr
    assert all("96110来电，一定要接" not in f["scripts"] for f in manifest(out))
    loaded = load(load_config(rendered_workspace))
    from outreach.planning.workspace import open_database

    with session(open_database(loaded)) as s:
        rows = s.exec(select(Broadcast).where(Broadcast.status == BroadcastStatus.EXPORTED)).all()
    assert rows and all("fraud-96110" not in r.script_ids.split(",") for r in rows)


def test_names_are_sanitised_and_paths_out_of_the_pack_refused(tmp_path: Path) -> None:
    rel = pack_rel_path("dazhuang", "大庄镇", "dazhuang-05", '李家*洼村?', date(2026, 12, 1),
                        __import__("datetime").time(6, 30), "morning")
    assert rel == "dazhuang_大庄镇/dazhuang-05_李家_洼村_/2026-12-01_0630_早间.mp3"
    for bad in ("../../evil", "a/b", "..", "x\\y"):
        with pytest.raises(OutputError, match=r"村名称 .* 含有 .*会让路径跑出节目包文件夹；请在 schedules/county.yaml 里改名"):
            pack_rel_path("dazhuang", "大庄镇", "dazhuang-05", bad, date(2026, 12, 1),
                          __import__("datetime").time(6, 30), "morning")
    with pytest.raises(OutputError, match="会跑出输出文件夹"):
        inside(tmp_path, "../escape.mp3")


def test_village_named_dotdot_is_refused_and_nothing_leaves_out(workspace: Path, tmp_path: Path) -> None:
    county = workspace / "schedules" / "county.yaml"
    county.write_text(county.read_text(encoding="utf-8").replace("name: 李家洼村", "name: ../../../escaped"),
                      encoding="utf-8")
    out = tmp_path / "stick" / "usb"
    result = export(workspace, out, "--date", "2026-12-01", "--village", OFFLINE)
    assert result.exit_code == 1
    # The registry refuses the name on load, before export could build a path from it.
    assert "county.yaml" in result.stderr and "'../../../escaped' 里有 / 或 \\" in result.stderr
    assert "名称会用作U盘上的文件夹名" in result.stderr
    assert not any((tmp_path / "stick").rglob("*.mp3")) and not list(tmp_path.glob("escaped*"))


@pytest.mark.slow
def test_stale_parts_on_the_stick_are_removed_live_ones_kept(rendered_workspace: Path, tmp_path: Path) -> None:
    out = tmp_path / "usb"
    folder = out / "dazhuang_大庄镇" / "dazhuang-05_李家洼村"
    folder.mkdir(parents=True)
    dead = folder / ".2026-12-01_0630_早间.mp3.999999.ab12.part"
    live = folder / f".2026-12-01_1830_晚间.mp3.{os.getppid()}.cd34.part"
    dead.write_bytes(b"half a program")
    os.utime(dead, (time.time() - 3600, time.time() - 3600))
    live.write_bytes(b"half a program")
    # Written by our (live) parent after it started, before this process started.
    born = process_start(os.getppid())
    os.utime(live, (born, born))
    assert export(rendered_workspace, out, "--date", "2026-12-01", "--village", OFFLINE).exit_code == 0
    assert not dead.exists()
    assert live.exists(), "a live process's temporary file is not touched"


@pytest.mark.slow
def test_each_distinct_program_is_built_once_and_stick_files_differ_only_by_their_tags(
        rendered_workspace: Path, tmp_path: Path) -> None:
    """One staged copy per distinct program; on the stick, per-village ID3 titles make each file its own bytes.

    So a stick file cannot be a hard link to another (it would show the other village's title):
    the pack copies, which FAT32/exFAT sticks need anyway.
    """
    import hashlib

    from outreach.delivery.usb.packs import _audio_offset

    out = tmp_path / "usb"
    villages = ["hexi-04", "hexi-07"]  # on Dec 1 morning and Dec 2 evening they air the same program
    result = export(rendered_workspace, out, "--date", "2026-12-01", "--to", "2026-12-02",
                    *[a for v in villages for a in ("--village", v)])
    assert result.exit_code == 0, result.output

    def body(path: Path) -> str:
        data = path.read_bytes()
        return hashlib.sha256(data[_audio_offset(path):]).hexdigest()

    staged = sorted((rendered_workspace / "build" / "programs").glob("program-*.mp3"))
    staged_bodies = [body(p) for p in staged]
    assert len(set(staged_bodies)) == len(staged_bodies)  # no program staged twice
    files = sorted(out.glob("*/*/*.mp3"))
    assert len(files) == len(villages) * 4
    by_body: dict[str, list[Path]] = {}
    for f in files:
        by_body.setdefault(body(f), []).append(f)
    assert set(by_body) <= set(staged_bodies)  # every stick file is a staged program behind its own tag
    assert len(by_body) < len(files)  # villages share programs ...
    shared = max(by_body.values(), key=len)
    assert len({str(ID3(f)["TIT2"]) for f in shared}) == len(shared)  # ... but each file carries its own title
    assert len({f.read_bytes() for f in shared}) == len(shared)
    assert all(f.stat().st_nlink == 1 and stat.S_IMODE(f.stat().st_mode) == 0o644 for f in files)
