"""Proof of air for central playback (`outreach run --monitor SPEC`): a microphone beside the horn.

The live runtime starts a monitor (outreach.audio.monitor.PlayMonitor) beside a play; when the
player has run the program through, the monitor's verdict upgrades the play's evidence from
`player` to `heard`, with the match figures (proof_score, proof_delay_s, proof_snr_db). Only the
figures are kept: captured audio is dropped once matched (audio/monitor.py). One microphone hears
one horn, so only a play on air alone is checked; plays started together are logged as usual.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from outreach.errors import OutreachError
from outreach.models import BroadcastStatus, Evidence

if TYPE_CHECKING:
    from outreach.audio.monitor import PlayMonitor, Source
    from outreach.delivery.live.play import Ended

log = logging.getLogger("outreach.playout")
PROOF_WAIT_S = 30.0  # how long after the player ended the last window may still be matching


def open_monitor(spec: str) -> Source:
    """The capture source `--monitor SPEC` names (alsa:DEVICE, file:PATH), opened now.

    Raises MonitorError (an OutreachError, in Chinese) when it cannot be named or opened.
    """
    from outreach.audio.monitor import open_source  # numpy and scipy load only when a monitor is used

    return open_source(spec)


def watch(source: Source | None, program: Path, length_s: float | None, started: float) -> PlayMonitor | None:
    """Start listening to one play that began at `started` (time.monotonic()); None without a source or length."""
    if source is None or not length_s:
        return None
    from outreach.audio.monitor import PlayMonitor

    return PlayMonitor(source, program, length_s, started).start()


def with_proof(ended: Ended, monitor: PlayMonitor | None, what: str) -> Ended:
    """`ended` with the monitor's verdict: a played program heard is evidence `heard`, with its figures.

    A play that failed stays failed; a monitor that failed or did not finish leaves the evidence as it was.
    """
    if monitor is None:
        return ended
    if ended.status is not BroadcastStatus.PLAYED:
        monitor.cancel()
        return ended
    try:
        result = monitor.result(timeout_s=PROOF_WAIT_S)
    except OutreachError as exc:
        log.error("%s：播出监听失败：%s", what, exc)
        return ended
    if result is None:
        log.warning("%s：播出监听没有在 %.0f 秒内得出结果", what, PROOF_WAIT_S)
        return ended
    fields: dict[str, Any] = result.event_fields()
    figures = {k: fields[k] for k in ("proof_score", "proof_delay_s", "proof_snr_db")}
    if result.heard:
        log.info("%s：话筒听到了节目（匹配分 %.2f，延迟 %s 秒）", what, result.score, figures["proof_delay_s"])
        return ended._replace(evidence=Evidence.HEARD, proof=figures)
    log.warning("%s：话筒没有听到节目：%s", what, result.reason or "匹配分不够")
    return ended._replace(proof=figures)
