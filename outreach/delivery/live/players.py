"""Player processes: route the command per village, start it in its own process group, stop the whole group.

Commands live only in outreach.toml (`[deliver] player` and the named `[players]`); county.yaml
(and so the village form) only picks a name. A command always runs as an argv list, never
through a shell, so a placeholder's value ({village_name} …) is only ever one argument.

A player runs in a new session, so its process group holds every process it
forks (a wrapper script and its child). A timeout, a clean stop, or a restart
that finds an orphaned play stops the whole group, never only the direct child.

The default player is the built-in one (config.BUILTIN_PLAYER, `builtin`): the command
`["builtin", "{file}"]`, run as `python -m outreach.delivery.live.soundout`, which plays on this
machine's sound card through the stations' miniaudio output and fails loudly without one.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import IO

from outreach.config import BUILTIN_PLAYER, CONFIG_NAME, PLAYER_FIELDS, Config
from outreach.delivery.live import soundout
from outreach.delivery.live.procs import group_alive
from outreach.errors import ConfigError, DeliveryError
from outreach.planning.registry import Registry

log = logging.getLogger("outreach.playout")
STOP_GRACE_S = 2.0


def player_name(registry: Registry, village_id: str) -> str | None:
    """The name of the village's own player, else its township's; None means [deliver] player."""
    village = registry.villages[village_id]
    township = registry.townships.get(village.township_id)
    return village.player or (township.player if township else None)


def player_for(registry: Registry, config: Config, village_id: str) -> list[str]:
    """The command of the village's named player, else its township's, else [deliver] player.

    Raises ConfigError listing the defined names if the name is not in outreach.toml [players].
    """
    name = player_name(registry, village_id)
    return config.player_command(name) if name else config.default_player


def fill(player: Sequence[str], values: Mapping[str, str]) -> list[str]:
    """The player command with {file}, {village} … replaced (other braces are left as they are)."""
    out = []
    for arg in player:
        for name in PLAYER_FIELDS:
            arg = arg.replace("{" + name + "}", values.get(name, ""))
        out.append(arg)
    return out


def route(registry: Registry, config: Config, village_id: str, slot: str, day: date, audio: Path) -> list[str]:
    """The argv that plays `audio` on one village's loudspeaker (run without a shell)."""
    village = registry.villages[village_id]
    return fill(player_for(registry, config, village_id), {
        "file": str(audio), "village": village.id, "village_name": village.name,
        "township": village.township_id, "slot": slot, "date": day.isoformat()})


def is_builtin(cmd: Sequence[str]) -> bool:
    """Whether `cmd` is the built-in player (plays on this machine's sound card)."""
    return bool(cmd) and cmd[0] == BUILTIN_PLAYER


def argv(cmd: Sequence[str]) -> list[str]:
    """The argv that runs `cmd`: the built-in player becomes this Python running soundout."""
    if is_builtin(cmd):
        return [sys.executable, "-m", soundout.__name__, *cmd[1:]]
    return list(cmd)


def display_name(cmd: Sequence[str]) -> str:
    """How messages name a player: its program, or 内置播放 for the built-in one."""
    return soundout.LABEL if is_builtin(cmd) else cmd[0]


def builtin_problem(timeout_s: float = 30.0) -> str | None:
    """Why the built-in player cannot sound here (no sound card …), or None if it can."""
    try:
        done = subprocess.run(argv([BUILTIN_PLAYER, "--check"]), capture_output=True, text=True,
                              timeout=timeout_s, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return f"{soundout.LABEL}检查声音输出超过 {timeout_s:.0f} 秒没有结果"
    if done.returncode == 0:
        return None
    lines = done.stderr.strip().splitlines()
    return lines[-1] if lines else f"{soundout.LABEL}检查声音输出失败（退出码 {done.returncode}）"


def program_length(path: Path) -> float | None:
    """The length of a program's MP3 in seconds, or None if it cannot be read."""
    from outreach.station.output import mp3_duration

    try:
        return mp3_duration(path)
    except Exception:  # miniaudio's errors have no common base with OSError
        return None


def _found(program: str) -> bool:
    if program == BUILTIN_PLAYER:
        return True
    if "/" in program:
        return os.path.isfile(program) and os.access(program, os.X_OK)
    return shutil.which(program) is not None


def check_players(registry: Registry, config: Config, village_ids: Sequence[str]) -> None:
    """Refuse to start when a networked village's player is not defined or its program does not exist;
    say loudly (a log error) when the built-in player has no sound output here.

    Raises ConfigError naming the player, the program, where it is chosen, the villages it serves and the fix.
    """
    missing: dict[tuple[str | None, str], list[str]] = {}
    builtin: list[str] = []
    for vid in village_ids:
        name = player_name(registry, vid)
        program = route(registry, config, vid, "morning", date(2000, 1, 1), Path("x.mp3"))[0]
        if program == BUILTIN_PLAYER:
            builtin.append(vid)
        if not _found(program):
            missing.setdefault((name, program), []).append(vid)
    if builtin and not missing and (problem := builtin_problem()):
        # Not a refusal: the other channels still run, and each play is logged failed with this reason.
        log.error("%s（用内置播放的联网村 %d 个，如 %s）；到点的节目都会记为失败", problem, len(builtin), builtin[0])
    if missing:
        lines = []
        for (name, program), vids in missing.items():
            village = registry.villages[vids[0]]
            township = registry.townships.get(village.township_id)
            chosen = (f"schedules/county.yaml 的村 {village.id}" if village.player else
                      f"schedules/county.yaml 的乡镇 {township.id}" if township and township.player else "")
            where = (f"{CONFIG_NAME} 的 [players] {name}，由 {chosen} 选用" if name else
                     f"{CONFIG_NAME} 的 [deliver] player")
            shown = "、".join(vids[:5]) + (f" 等 {len(vids)} 个村" if len(vids) > 5 else "")
            lines.append(f"找不到播放程序 '{program}'（在 {where}；用到它的村：{shown}）")
        raise ConfigError("；".join(lines) + f"；请安装它，或在 {CONFIG_NAME} 里把播放程序写成完整路径"
                          "（如 [\"/usr/bin/ffplay\", \"-nodisp\", \"-autoexit\", \"{file}\"]）")


def start_time(pid: int) -> int | None:
    """The kernel start time of `pid` (clock ticks since boot): tells a reused pid from ours."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class Player:
    """A started player: its process (the group leader) and where its stderr goes."""

    proc: subprocess.Popen[bytes]
    started: int | None
    stderr_path: Path
    deadline: float  # time.monotonic() after which it is stopped
    term_sent: float | None = None
    t0: float = 0.0  # time.monotonic() when it was started: how long it ran is checked against the program
    builtin: bool = False

    @property
    def pgid(self) -> int:
        return self.proc.pid

    def stderr_tail(self) -> str:
        """The player's last words: two lines, or the built-in player's one Chinese line (not ALSA's noise)."""
        try:
            lines = self.stderr_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(lines[-1:] if self.builtin else lines[-2:])

    def cleanup(self) -> None:
        self.stderr_path.unlink(missing_ok=True)


def spawn(cmd: Sequence[str], stderr_dir: Path, timeout_s: float) -> Player:
    """Start `cmd` in a new session (its own process group); raise DeliveryError if it cannot start."""
    stderr_dir.mkdir(parents=True, exist_ok=True)
    err_path = stderr_dir / f"player-{os.getpid()}-{time.monotonic_ns()}.log"
    err: IO[bytes]
    with err_path.open("wb") as err:
        try:
            t0 = time.monotonic()
            proc = subprocess.Popen(argv(cmd), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                    start_new_session=True, close_fds=True)
        except OSError as exc:
            err_path.unlink(missing_ok=True)
            what = "找不到" if isinstance(exc, FileNotFoundError) else f"无法启动（{exc.strerror}）"
            raise DeliveryError(f"播放程序 '{cmd[0]}' {what}；请检查 outreach.toml 里的 [deliver] player "
                                "和 [players]（schedules/county.yaml 里该村或乡镇的 player 选的是其中的名字）") from exc
    return Player(proc, start_time(proc.pid), err_path, t0 + timeout_s, t0=t0, builtin=is_builtin(cmd))


def signal_group(pgid: int, sig: int) -> bool:
    """Send `sig` to a process group; False if the group is gone."""
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return False


def stop_group(pgid: int, *, grace_s: float = STOP_GRACE_S, leader: subprocess.Popen[bytes] | None = None) -> None:
    """SIGTERM the whole group, then SIGKILL what is left after `grace_s`."""
    if not signal_group(pgid, signal.SIGTERM):
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if leader is not None:
            leader.poll()
        if not group_alive(pgid):
            return
        time.sleep(0.05)
    signal_group(pgid, signal.SIGKILL)
    if leader is not None:
        try:
            leader.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def stop_orphans(groups: list[tuple[int, int | None]], *, grace_s: float = STOP_GRACE_S) -> set[int]:
    """Stop the groups of players whose scheduler died, all at once; return the pgids that were still running.

    A group whose leader is alive with another start time is someone else's (pid reused): left alone.
    """
    live = set()
    for pgid, started in groups:
        now_started = start_time(pgid)
        if now_started is not None and started is not None and now_started != started:
            continue
        if group_alive(pgid) and signal_group(pgid, signal.SIGTERM):
            live.add(pgid)
    deadline = time.monotonic() + grace_s
    left = set(live)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = {g for g in left if group_alive(g)}
    for pgid in left:
        signal_group(pgid, signal.SIGKILL)
    return live
