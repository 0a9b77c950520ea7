"""`python -m outreach.station run ...`: the station process (what `outreach station run` becomes)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from outreach.station.logs import log_to_stderr
from outreach.station.protocol import StationError

log = logging.getLogger("outreach.station")

# argparse's own words, by the msgids it passes to gettext (Python 3.11-3.13).
_ZH = {
    "usage: ": "用法：",
    "positional arguments": "位置参数",
    "options": "选项",
    "show this help message and exit": "显示本帮助并退出",
    "%(prog)s: error: %(message)s\n": "%(prog)s：错误：%(message)s\n",
    "argument %(argument_name)s: %(message)s": "参数 %(argument_name)s：%(message)s",
    "the following arguments are required: %s": "缺少必需的参数：%s",
    "unrecognized arguments: %s": "无法识别的参数：%s",
    "expected one argument": "需要一个值",
    "expected at most one argument": "最多需要一个值",
    "expected at least one argument": "至少需要一个值",
    "expected %s argument": "需要 %s 个值",
    "expected %s arguments": "需要 %s 个值",
    "invalid %(type)s value: %(value)r": "无效的 %(type)s 值：%(value)r",
    "invalid choice: %(value)r (choose from %(choices)s)": "无效的选择：%(value)r（可选：%(choices)s）",
    "ambiguous option: %(option)s could match %(matches)s": "选项有歧义：%(option)s 可能是 %(matches)s",
    "not allowed with argument %s": "不能与参数 %s 同时使用",
    "ignored explicit argument %r": "忽略了多余的值 %r",
}


@contextlib.contextmanager
def _zh() -> Iterator[None]:
    """argparse looks up `_` and `ngettext` in its module at call time: point them at the table for a while."""
    saved = argparse._, argparse.ngettext  # type: ignore[attr-defined]
    argparse._ = lambda s: _ZH.get(s, s)  # type: ignore[attr-defined]
    argparse.ngettext = lambda s, p, n: _ZH.get(s if n == 1 else p, s if n == 1 else p)  # type: ignore[attr-defined]
    try:
        yield
    finally:
        argparse._, argparse.ngettext = saved  # type: ignore[attr-defined]


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose own words (usage, options, errors) are Chinese."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        with _zh():
            super().__init__(*args, **kwargs)

    def parse_args(self, *args: Any, **kwargs: Any) -> Any:
        with _zh():
            return super().parse_args(*args, **kwargs)

    def parse_known_args(self, *args: Any, **kwargs: Any) -> Any:
        with _zh():
            return super().parse_known_args(*args, **kwargs)

    def format_usage(self) -> str:
        with _zh():
            return super().format_usage()

    def format_help(self) -> str:
        with _zh():
            text = super().format_help()
        for group in self._action_groups:  # section headings end in a full-width colon
            text = text.replace(f"\n{group.title}:\n", f"\n{group.title}：\n")
        return text

    def error(self, message: str) -> Any:
        with _zh():
            return super().error(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="outreach station run", description="运行村广播站：从县服务器同步节目，按时自行播放，接收紧急插播，回报播出记录。")
    p.add_argument("command", choices=["run"], metavar="run", help="运行村广播站")
    p.add_argument("--server", required=True, metavar="网址", help="县服务器网址，例如 http://county.example:8000")
    p.add_argument("--station-id", required=True, metavar="编号", help="`outreach station add` 打印的广播站编号")
    p.add_argument("--token-file", required=True, type=Path, metavar="文件", help="存放广播站令牌的文件")
    p.add_argument("--data", required=True, type=Path, metavar="目录", help="存放节目缓存、任务库和播出记录的目录")
    p.add_argument("--broker", default="", metavar="网址",
                   help="消息服务器（Mosquitto）地址 mqtt://HOST:PORT（默认用节目单里给出的）")
    p.add_argument("--output", default="sound", metavar="输出",
                   help="sound（通过 miniaudio 走 ALSA 声卡）、null，或 file:DIR[@SPEED]（测试用）")
    p.add_argument("--player", default=None, metavar="命令", help="改用播放程序命令，例如 'mpg123 -q {file}'")
    p.add_argument("--monitor", default="", metavar="监听",
                   help="播出监听：喇叭旁话筒 `alsa:设备名`（如 `alsa:hw:1,0`），或 `file:路径`（测试用录音）；"
                        "每次播出时录几小段与节目比对，只回报比对数值，录音不保存")
    p.add_argument("--days", type=int, default=7, metavar="天数", help="缓存未来几天的节目（默认 7）")
    p.add_argument("--sync-s", type=float, default=300.0, metavar="秒", help="同步间隔，单位秒（默认 300）")
    p.add_argument("--upload-s", type=float, default=5.0, metavar="秒", help="上传播出记录的间隔，单位秒（默认 5）")
    p.add_argument("--heartbeat-s", type=float, default=30.0, metavar="秒", help="心跳间隔，单位秒（默认 30）")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    log_to_stderr()
    from outreach.station.control import Control
    from outreach.station.listen import Listener
    from outreach.station.output import make_output
    from outreach.station.runner import Runtime, Settings, clock

    try:
        token = args.token_file.read_text(encoding="utf-8").strip()
        if not token:
            raise StationError(f"{args.token_file} 是空的；请写入 `outreach station add` 打印的令牌")
        output = make_output(args.output, args.player)
        listener = Listener(args.monitor) if args.monitor else None
        if listener is not None:
            listener.check()
        rt = Runtime(Settings(args.server, args.station_id, token, args.data.resolve(), args.days, args.sync_s,
                              args.upload_s, args.heartbeat_s, args.broker), output, listener)
    except (StationError, OSError) as exc:
        print(f"错误：{exc}", file=sys.stderr)
        return 1
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    rt.sync_once(clock())
    rt.start()
    broker = args.broker or (rt.manifest.broker_url if rt.manifest else "")
    if broker:
        rt.control = Control(rt, broker, heartbeat_s=args.heartbeat_s)
        rt.control.start()
    else:
        log.warning("还不知道消息服务器（Mosquitto）的地址：紧急插播和在线状态要等节目单给出地址后才能用")
    log.info("村广播站 %s 已运行（数据目录 %s）", args.station_id, args.data)
    done.wait()
    rt.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
