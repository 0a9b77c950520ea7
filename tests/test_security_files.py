"""Hand-edited files cannot hurt the machine: YAML bombs, deep nesting, huge files, odd init targets.

Each case runs the real CLI as a subprocess under a 1.5 GiB address-space cap and a time limit, so
a loader that expands an alias bomb fails the test (MemoryError traceback or timeout) instead of
taking the machine down.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.security

OUTREACH = str(Path(sys.executable).with_name("outreach"))
LIMIT_S = 60


def _cap_memory() -> None:
    cap = 1536 * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def outreach(ws: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([OUTREACH, *args, "-w", str(ws)], capture_output=True, text=True, timeout=LIMIT_S,
                          preexec_fn=_cap_memory, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})


def refused(result: subprocess.CompletedProcess[str], *words: str) -> None:
    """Exit 1 with one Chinese error line naming what to fix, and no traceback."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr[-2000:])
    assert "Traceback" not in result.stderr and "MemoryError" not in result.stderr, result.stderr[-2000:]
    assert "错误：" in result.stderr, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


def laughs(depth: int = 9, width: int = 9) -> str:
    """A billion-laughs chain: anchors a..i, each a list of `width` aliases of the one before."""
    names = [f"l{n}" for n in range(depth)]
    lines = [f"  - &{names[0]} [{', '.join(['x'] * width)}]"]
    for prev, name in zip(names, names[1:]):
        lines.append(f"  - &{name} [{', '.join(['*' + prev] * width)}]")
    return "\n".join(lines)


def replace_once(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_alias_bomb_in_a_campaigns_scripts_is_refused_at_its_line(workspace: Path) -> None:
    campaigns = workspace / "schedules" / "campaigns.yaml"
    replace_once(campaigns, "    scripts:                          # 轮流播放，每村每个都能听到\n",
                 "    scripts:\n" + laughs().replace("  - ", "      - ") + "\n")
    refused(outreach(workspace, "plan", "--from", "2026-12-01", "--to", "2026-12-01"), "campaigns.yaml", "别名")


def test_alias_bomb_in_campaign_targets_is_refused(workspace: Path) -> None:
    campaigns = workspace / "schedules" / "campaigns.yaml"
    replace_once(campaigns, "    targets:                          # 全县所有村\n      county: true\n",
                 "    targets:\n      villages:\n" + laughs().replace("  - ", "        - ") + "\n")
    refused(outreach(workspace, "plan", "--from", "2026-12-01", "--to", "2026-12-01"), "campaigns.yaml", "别名")


def test_merge_key_bomb_is_refused(workspace: Path) -> None:
    campaigns = workspace / "schedules" / "campaigns.yaml"
    bomb = ["x0: &m0 {k0: 1, k1: 2, k2: 3}"]
    for n in range(1, 9):
        refs = ", ".join(f"*m{n - 1}" for _ in range(9))
        bomb.append(f"x{n}: &m{n} {{<<: [{refs}], y{n}: 1}}")
    text = campaigns.read_text(encoding="utf-8")
    campaigns.write_text("\n".join(bomb) + "\n" + text, encoding="utf-8")
    refused(outreach(workspace, "plan", "--from", "2026-12-01", "--to", "2026-12-01"), "campaigns.yaml", "别名")


def test_alias_bomb_in_blackout_dates_is_refused(workspace: Path) -> None:
    slots = workspace / "schedules" / "slots.yaml"
    replace_once(slots, "  - dates: [2026-12-26, 2026-12-27]\n",
                 "  - dates:\n" + laughs().replace("  - ", "      - ").replace("x", "2026-12-26") + "\n")
    refused(outreach(workspace, "registry"), "slots.yaml", "别名")


def test_alias_bomb_in_a_script_title_is_refused_with_the_file(workspace: Path) -> None:
    script = workspace / "audio_scripts" / "fraud-96110.md"
    replace_once(script, "title: 96110来电，一定要接\n",
                 "bomb:\n" + laughs() + "\ntitle: *l8\n")
    result = outreach(workspace, "scripts", "check")
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "MemoryError" not in result.stderr
    assert "fraud-96110.md" in result.stdout + result.stderr and "别名" in result.stdout + result.stderr


@pytest.mark.parametrize("where", ["county", "campaigns", "front_matter"])
def test_nesting_fifty_thousand_deep_is_refused_without_a_traceback(workspace: Path, where: str) -> None:
    deep = "[" * 50_000 + "]" * 50_000
    if where == "county":
        path = workspace / "schedules" / "county.yaml"
        path.write_text(path.read_text(encoding="utf-8") + f"extra: {deep}\n", encoding="utf-8")
        refused(outreach(workspace, "registry"), "county.yaml", "嵌套")
    elif where == "campaigns":
        path = workspace / "schedules" / "campaigns.yaml"
        path.write_text(path.read_text(encoding="utf-8") + f"extra: {deep}\n", encoding="utf-8")
        refused(outreach(workspace, "plan", "--from", "2026-12-01", "--to", "2026-12-01"), "campaigns.yaml", "嵌套")
    else:
        replace_once(workspace / "audio_scripts" / "fraud-96110.md", "repeat: 2\n", f"repeat: 2\nextra: {deep}\n")
        result = outreach(workspace, "scripts", "check")
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
        assert "fraud-96110.md" in result.stdout + result.stderr and "嵌套" in result.stdout + result.stderr


def test_deeply_nested_toml_is_refused_naming_the_file(workspace: Path) -> None:
    config = workspace / "outreach.toml"
    config.write_text(config.read_text(encoding="utf-8") + "\n[extra]\ny = " + "[" * 50_000 + "]" * 50_000 + "\n",
                      encoding="utf-8")
    refused(outreach(workspace, "scripts", "check"), "outreach.toml", "嵌套")


def test_a_huge_yaml_file_is_refused_before_it_is_parsed(workspace: Path) -> None:
    county = workspace / "schedules" / "county.yaml"
    county.write_text(county.read_text(encoding="utf-8") + "#" + "x" * 6_000_000 + "\n", encoding="utf-8")
    refused(outreach(workspace, "registry"), "county.yaml", "太大")


def test_ordinary_aliases_still_load(workspace: Path) -> None:
    """A clerk who reuses a list with an anchor is not refused: only expansion beyond the budget is."""
    slots = workspace / "schedules" / "slots.yaml"
    replace_once(slots, "  - dates: [2026-12-26, 2026-12-27]\n", "  - dates: &kaoyan [2026-12-26, 2026-12-27]\n")
    replace_once(slots, "  - dates: [2027-06-07, 2027-06-08]\n    townships",
                 "  - dates: *kaoyan\n    villages: [lishu-01]\n    reason: 考点\n\n"
                 "  - dates: [2027-06-07, 2027-06-08]\n    townships")
    result = outreach(workspace, "registry")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("kind", ["file", "dangling_symlink", "proc"])
def test_init_on_a_non_directory_says_so_in_one_line(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "target"
    if kind == "file":
        target.write_text("x")
    elif kind == "dangling_symlink":
        target.symlink_to(tmp_path / "nowhere")
    else:
        target = Path("/proc/outreach-no-such-dir")
    result = subprocess.run([OUTREACH, "init", str(target)], capture_output=True, text=True, timeout=LIMIT_S)
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr and result.stderr.startswith("错误："), result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    if kind == "file":
        assert target.read_text() == "x"


@pytest.mark.slow
def test_a_file_where_a_village_folder_belongs_fails_that_village_only(rendered_workspace: Path, tmp_path: Path) -> None:
    """Export never records less than it wrote: the blocked village is reported with the fix, the rest
    get their packs, manifest entries and `exported` rows."""
    import json

    from sqlmodel import select

    from outreach.config import load_config
    from outreach.db import make_engine, session
    from outreach.models import Broadcast, BroadcastStatus

    out = tmp_path / "usb"
    (out / "dazhuang_大庄镇").mkdir(parents=True)
    (out / "dazhuang_大庄镇" / "dazhuang-07_西岗村").write_text("x")
    result = outreach(rendered_workspace, "export", "--date", "2026-12-01", "--past", "--out", str(out))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    failed = [line for line in result.stderr.splitlines() if line.startswith("失败：")]
    assert len(failed) == 1 and "dazhuang-07_西岗村" in failed[0] and "请删除或改名" in failed[0], result.stderr
    files = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["files"]
    villages = {f["village_id"] for f in files}
    assert "dazhuang-07" not in villages and len(villages) >= 5, villages
    assert (out / "dazhuang_大庄镇" / "dazhuang-07_西岗村").read_text() == "x"
    engine = make_engine(load_config(rendered_workspace).resolved_database_url())
    with session(engine) as s:
        rows = s.exec(select(Broadcast).where(Broadcast.status == BroadcastStatus.EXPORTED)).all()
    assert {r.village_id for r in rows} == villages
    assert len({(r.village_id, r.slot) for r in rows}) == len(files)


def _descendants(pid: int) -> set[int]:
    """Every live descendant of `pid`, from /proc (children of each of its threads)."""
    found, todo = set(), [pid]
    while todo:
        current = todo.pop()
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                kids = {int(k) for k in task.read_text().split()}
            except OSError:
                continue
            todo += sorted(kids - found)
            found |= kids
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] not in "ZX"
    except (OSError, IndexError):
        return False


@pytest.mark.slow
@pytest.mark.faults
def test_render_workers_and_resource_tracker_die_with_a_killed_render(workspace: Path) -> None:
    import signal
    import time

    proc = subprocess.Popen([OUTREACH, "render", "--force", "-w", str(workspace)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    children: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(children) < 3:  # the resource tracker and two workers
            time.sleep(0.2)
            children = _descendants(proc.pid)
            assert proc.poll() is None, "render finished before its workers could be seen"
        assert len(children) >= 3, children
        time.sleep(2)  # let the workers load the model and start on clips
        children = _descendants(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_alive(c) for c in children):
            time.sleep(0.2)
        assert not [c for c in children if _alive(c)], "workers outlived their killed parent"
    finally:
        for c in children | _descendants(proc.pid) | {proc.pid}:
            try:
                os.kill(c, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_a_gregorian_rule_works_past_the_lunar_calendar_range(workspace: Path) -> None:
    result = outreach(workspace, "markets", "--rule", "逢双日", "--from", "9999-12-30", "--to", "9999-12-31")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["9999-12-30  周四"]
    lunar = outreach(workspace, "markets", "--rule", "逢农历双日", "--from", "9999-12-30", "--to", "9999-12-31")
    assert lunar.returncode == 1 and "农历只能查到" in lunar.stderr


def test_report_out_in_a_missing_folder_is_refused_and_creates_nothing(workspace: Path, tmp_path: Path) -> None:
    target = tmp_path / "nonexistent" / "dir" / "r.html"
    result = outreach(workspace, "report", "--campaign", "winter-traffic", "--out", str(target))
    assert result.returncode == 2 and "不存在" in result.stderr, result.stderr
    assert not (tmp_path / "nonexistent").exists()
    ok = outreach(workspace, "report", "--campaign", "winter-traffic", "--out", str(tmp_path / "r.html"))
    assert ok.returncode == 0 and (tmp_path / "r.html").is_file(), ok.stderr


def test_serve_starts_with_an_alias_bomb_in_campaigns(workspace: Path) -> None:
    """The dashboard must come up (and say what is wrong) rather than expand the bomb at start-up."""
    import socket
    import time
    import urllib.request

    campaigns = workspace / "schedules" / "campaigns.yaml"
    replace_once(campaigns, "    scripts:                          # 轮流播放，每村每个都能听到\n",
                 "    scripts:\n" + laughs().replace("  - ", "      - ") + "\n")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([OUTREACH, "serve", "--port", str(port), "-w", str(workspace)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, preexec_fn=_cap_memory)
    try:
        deadline, status = time.monotonic() + 45, None
        while time.monotonic() < deadline and proc.poll() is None and status is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2) as response:
                    status = response.status
            except OSError:
                time.sleep(0.3)
        assert status == 200, proc.stderr.read().decode()[-2000:] if proc.poll() is not None else "no answer"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
