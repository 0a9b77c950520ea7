"""Log lines in Chinese, for the village box and the county server's `outreach run` alike.

Each line carries Beijing time with its offset (whatever zone the machine runs in) and the level in
Chinese. APScheduler (both processes run it) and Alembic (the server's database upgrades) log in
English: their lines that matter are translated here, and their chatter is dropped. It lives in
station/ because the box may import nothing of the planner, while the server may import this.
"""

from __future__ import annotations

import logging
import re
import sys
from datetime import datetime
from typing import Any

from outreach.station.protocol import TZ

__all__ = ["LEVELS", "LIBRARY_LINES", "ChineseFormatter", "ChineseLibraryLines", "log_to_stderr"]

LEVELS = {"DEBUG": "调试", "INFO": "信息", "WARNING": "警告", "ERROR": "错误", "CRITICAL": "严重"}
LIBRARIES = ("apscheduler", "alembic")
# A library's English line (its format string) → the Chinese one with the same %-fields;
# "（不显示）" drops a line that tells the reader nothing.
LIBRARY_LINES = {
    "Scheduler started": "调度器已启动",
    "Scheduler has been shut down": "调度器已停止",
    "Paused scheduler job processing": "调度器暂停执行任务",
    "Resumed scheduler job processing": "调度器开始执行任务",
    'Added job "%s" to job store "%s"': "已加入任务 %s（任务库 %s）",
    "Removed job %s": "已删除任务 %s",
    "Adding job tentatively -- it will be properly scheduled when the scheduler starts": "（不显示）",
    'Running job "%s" (scheduled at %s)': "开始执行任务 %s（预定 %s）",
    'Job "%s" executed successfully': "任务 %s 执行完毕",
    'Run time of job "%s" was missed by %s': "任务 %s 错过了预定时间，晚了 %s",
    'Job "%s" raised an exception': "任务 %s 出错",
    "Error running job %s": "任务 %s 出错",
    'Execution of job "%s" skipped: maximum number of running instances reached (%d)':
        "任务 %s 这次没有执行：上一次还没运行完（最多同时运行 %d 个）",
    "Error getting due jobs from job store %r: %s": "读取任务库 %r 里到期的任务时出错：%s",
    'Error submitting job "%s" to executor "%s"': "任务 %s 交给执行器 %s 时出错",
    'Executor lookup ("%s") failed for job "%s" -- removing it from the job store':
        "找不到执行器 %s，任务 %s 已从任务库删除",
    'Unable to restore job "%s" -- removing it': "任务 %s 无法从任务库读出，已删除",
    "Process pool is broken; replacing pool with a fresh instance": "执行任务的进程池坏了，已换一个新的",
    "Error notifying listener": "调度器通知事件时出错",
    "Context impl %s.": "（不显示）",
    "Will assume %s DDL.": "（不显示）",
    "Running %s": "数据库升级：%s → %s",
}
_STEP = re.compile(r"(?:upgrade|downgrade) (.*?) -> ([^,]*)")


def _shown(value: Any) -> Any:
    """A job by its name (APScheduler's own text of a job is English); anything else as it is."""
    return value.name if type(value).__name__ == "Job" and hasattr(value, "name") else value


class ChineseLibraryLines(logging.Filter):
    """A handler filter: the known lines of APScheduler and Alembic in Chinese; their other INFO lines dropped.

    Their unknown warnings and errors pass unchanged: a problem is never hidden.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(LIBRARIES):
            return True
        zh = LIBRARY_LINES.get(record.msg) if isinstance(record.msg, str) else None
        if zh is None:
            return record.levelno >= logging.WARNING
        if zh == "（不显示）":
            return False
        args = record.args if isinstance(record.args, tuple) else ()
        if record.name.startswith("alembic") and record.msg == "Running %s":
            step = _STEP.match(str(args[0])) if args else None
            args = (step[1] or "（新库）", step[2]) if step else ("？", "？")
        record.msg, record.args = zh, tuple(_shown(a) for a in args)
        return True


class ChineseFormatter(logging.Formatter):
    """`2026-12-01T06:30:00.123+08:00 信息 outreach.scheduler：…`: Beijing time, the level in Chinese."""

    def format(self, record: logging.LogRecord) -> str:
        record.level_zh = LEVELS.get(record.levelname, record.levelname)
        return super().format(record)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return datetime.fromtimestamp(record.created, TZ).isoformat(timespec="milliseconds")


def log_to_stderr(level: int = logging.INFO) -> logging.Handler:
    """Send the process's log to stderr in Chinese; returns the handler.

    Like `logging.basicConfig`, it does nothing when the root logger already has a handler (a test's).
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ChineseFormatter("%(asctime)s %(level_zh)s %(name)s：%(message)s"))
    handler.addFilter(ChineseLibraryLines())
    logging.basicConfig(level=level, handlers=[handler])
    return handler
