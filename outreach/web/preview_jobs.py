"""Try-listen clips made in the background, so 试听 answers at once and the script page shows the progress.

A preview takes seconds to render (about 11 s with the neural voice). The 试听 button starts a
job, waits a moment (a clip already made comes back at once), then sends the browser back to the
script page, which says 正在生成试听录音… and reloads itself (a meta refresh, no JavaScript)
until the job is done. Jobs live in the `serve` process's memory: one per script version.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from outreach.errors import OutreachError

log = logging.getLogger("outreach.web")

__all__ = ["PreviewJob", "PreviewJobs", "jobs_of"]

# Finished jobs kept so a page can still show their error; older ones are forgotten.
_KEEP_DONE = 200
_CREATE = threading.Lock()


@dataclass
class PreviewJob:
    """One preview being rendered: which script version, who asked and when; `error` once it failed."""

    script_id: str
    content_hash: str
    actor: str
    started: datetime
    done: threading.Event = field(default_factory=threading.Event)
    error: str | None = None

    @property
    def running(self) -> bool:
        return not self.done.is_set()


class PreviewJobs:
    """The preview jobs of one dashboard app, by (script id, content hash)."""

    def __init__(self) -> None:
        self._jobs: dict[tuple[str, str], PreviewJob] = {}
        self._lock = threading.Lock()

    def get(self, script_id: str, content_hash: str) -> PreviewJob | None:
        """The newest job of this script version, running or done."""
        with self._lock:
            return self._jobs.get((script_id, content_hash))

    def start(self, script_id: str, content_hash: str, actor: str, started: datetime,
              work: Callable[[], None]) -> PreviewJob:
        """Run `work` in a background thread, unless a job of this version is already running (then that job)."""
        key = (script_id, content_hash)
        with self._lock:
            running = self._jobs.get(key)
            if running is not None and running.running:
                return running
            job = PreviewJob(script_id, content_hash, actor, started)
            self._jobs.pop(key, None)
            self._jobs[key] = job
            done = [k for k, j in self._jobs.items() if not j.running]
            for old in done[:max(0, len(done) - _KEEP_DONE)]:
                del self._jobs[old]
        threading.Thread(target=_run, args=(job, work), name=f"preview-{script_id}", daemon=True).start()
        return job


def _run(job: PreviewJob, work: Callable[[], None]) -> None:
    try:
        work()
    except OutreachError as exc:
        job.error = str(exc)
    except Exception:  # a thread's exception would be lost; the page must say the preview failed
        log.exception("试听录音 %s 生成失败", job.script_id)
        job.error = "生成试听录音时出了内部错误；请稍后再试，或把这个情况告诉技术人员"
    finally:
        job.done.set()


def jobs_of(state: Any) -> PreviewJobs:
    """The PreviewJobs kept on an app's `state`, created on first use."""
    with _CREATE:
        jobs = getattr(state, "preview_jobs", None)
        if jobs is None:
            jobs = PreviewJobs()
            state.preview_jobs = jobs
        return jobs  # type: ignore[no-any-return]
