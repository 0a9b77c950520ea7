"""Which processes are alive, by signal 0 and /proc; a zombie (killed, not yet reaped) counts as gone."""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def _stat(pid: int | str) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name: [state, ppid, pgrp, …]; None if unreadable."""
    try:
        fields = Path("/proc", str(pid), "stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields or None


def _reaches(send: Callable[[int, int], None], target: int) -> bool:
    """Whether signal 0 finds `target`; a process of another user exists but refuses it."""
    try:
        send(target, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def pid_alive(pid: int) -> bool:
    """Whether process `pid` runs (not a zombie); unknown /proc counts as alive."""
    if not _reaches(os.kill, pid):
        return False
    fields = _stat(pid)
    return fields is None or fields[0] != "Z"


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group, from /proc."""
    found = []
    for entry in os.scandir("/proc"):
        fields = _stat(entry.name) if entry.name.isdigit() else None
        if fields and fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(entry.name))
    return found


def group_alive(pgid: int) -> bool:
    """Whether any live process is left in the group (zombies waiting for a reaper do not count)."""
    return _reaches(os.killpg, pgid) and bool(group_members(pgid))
