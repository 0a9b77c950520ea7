"""Proof of air on the box: a microphone beside the horn, listened to by a helper process per play.

The matcher needs numpy and scipy, which the station process never loads (it must start on a
bare box), so `--monitor SPEC` runs `python -m outreach.audio.monitor` beside it: `check` once at
start-up (a wrong device fails the start, in Chinese, naming it), then `prove` for each play, which
captures a few windows while the program airs, matches them, prints the figures as JSON and keeps
no audio. The figures go into the play's as-run event (protocol.AsRunEvent.proof_*).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

from outreach.station.protocol import HEARD_SCORE, PROOF_RANGES, StationError, proof_problem

log = logging.getLogger("outreach.station")
HELPER = "outreach.audio.monitor"
CHECK_TIMEOUT_S = 60.0


class Listening:
    """One play's helper process: capturing now, figures when finished."""

    def __init__(self, proc: subprocess.Popen[str], label: str) -> None:
        self.proc, self.label = proc, label

    def finish(self, timeout_s: float) -> dict[str, Any]:
        """The as-run proof fields ({} when the helper failed, timed out or printed nonsense)."""
        try:
            out, err = self.proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.cancel()
            log.warning("%s：监听在 %.0f 秒内没有比对完，这次播出不带监听结果", self.label, timeout_s)
            return {}
        if self.proc.returncode != 0:
            lines = [ln for ln in err.splitlines() if ln.startswith("错误")] or err.strip().splitlines()[-1:]
            log.warning("%s：监听失败：%s", self.label, lines[-1] if lines else f"退出码 {self.proc.returncode}")
            return {}
        try:
            figures = json.loads(out.strip().splitlines()[-1]) if out.strip() else None
        except ValueError:
            figures = None
        if not isinstance(figures, dict):
            return {}
        fields = {k: figures.get(k) for k in ("proof_heard", *PROOF_RANGES)}
        problem = proof_problem(fields | {"kind": "played"})
        if problem or fields["proof_heard"] is None:
            log.warning("%s：监听结果不可用（%s）", self.label, problem or "缺少 proof_heard")
            return {}
        fields["reason"] = str(figures.get("reason", ""))[:300]
        return fields

    def cancel(self) -> None:
        """Stop the helper: the play was cut short, its windows no longer line up."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


class Listener:
    """`--monitor SPEC` on the station: checks the source at start-up, then listens to each play."""

    def __init__(self, spec: str, python: str = sys.executable) -> None:
        self.spec, self.python = spec, python

    def _argv(self, command: str, *extra: str) -> list[str]:
        return [self.python, "-m", HELPER, command, "--monitor", self.spec, *extra]

    def check(self) -> None:
        """StationError (the helper's Chinese message) unless the source opens."""
        try:
            done = subprocess.run(self._argv("check"), capture_output=True, text=True, timeout=CHECK_TIMEOUT_S,
                                  stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise StationError(f"--monitor {self.spec}：无法启动监听程序（{exc}）") from exc
        if done.returncode != 0:
            lines = [ln.removeprefix("错误：") for ln in done.stderr.splitlines() if ln.startswith("错误")]
            raise StationError(lines[-1] if lines else f"--monitor {self.spec}：监听程序出错（{done.stderr[-300:]}）")

    def begin(self, program: Path, length_s: float, started: float, label: str) -> Listening | None:
        """Start listening to a play of `program` that began at `started` (time.monotonic()); None if it cannot."""
        try:
            proc = subprocess.Popen(self._argv("prove", "--program", str(program), "--length", f"{length_s:.3f}",
                                               "--started", repr(started)), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        except OSError as exc:
            log.warning("%s：无法启动监听程序（%s），这次播出不带监听结果", label, exc)
            return None
        return Listening(proc, label)


def describe(fields: dict[str, Any]) -> str:
    """One line for the play's detail: heard or not, with the figures."""
    if not fields:
        return ""
    figures = f"分数 {fields['proof_score']:.2f}"
    if fields.get("proof_delay_s") is not None:
        figures += f"，延迟 {fields['proof_delay_s']:.2f} 秒"
    if fields.get("proof_snr_db") is not None:
        figures += f"，信噪比约 {fields['proof_snr_db']:.0f} dB"
    if fields["proof_heard"]:
        return f"监听：话筒听到了节目（{figures}）"
    why = fields.get("reason") or f"分数低于 {HEARD_SCORE}"
    return f"监听：话筒没有听到节目（{figures}；{why}）"
