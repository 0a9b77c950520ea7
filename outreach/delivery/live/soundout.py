"""The built-in player: one program on this machine's sound card, through the stations' own miniaudio output.

It runs as its own process, like any player command (`python -m outreach.delivery.live.soundout FILE`),
so the live runtime times it, stops its process group and settles it after a crash the same way.
With no sound card it says so in Chinese on stderr and exits NO_DEVICE: the play is logged `failed`
with that reason, never `played`. `--output null` plays to nowhere in real time (tests, rehearsals);
`--check` only opens the device and reports.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

NO_DEVICE = 3  # no sound output could be opened
BAD_FILE = 4  # the program file is missing or cannot be decoded
LOST_DEVICE = 5  # the output failed during the play
LABEL = "内置播放"


def no_device(cause: object) -> str:
    """Why the built-in player cannot sound, and what to do (the last line it prints)."""
    return (f"{LABEL}打不开声音输出（{cause}）：这台电脑可能没有声卡，或声卡、功放没接好；请检查声卡和 ALSA"
            "（`aplay -l`），或在 outreach.toml 的 [deliver] player 里改用能出声的播放命令")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="soundout", description="内置播放：用本机声卡播放一个节目文件。")
    parser.add_argument("--output", choices=("sound", "null"), default="sound",
                        help="sound：本机声卡（默认）；null：按实时长度播放但不出声（测试、演练用）")
    parser.add_argument("--check", action="store_true", help="只检查能否打开声音输出，然后退出")
    parser.add_argument("file", nargs="?", type=Path, help="要播放的节目文件（MP3）")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from outreach.station.output import MiniaudioOutput, sound_error
    from outreach.station.protocol import StationError

    try:
        output = MiniaudioOutput(null=args.output == "null")
    except StationError as exc:
        print(no_device(sound_error(exc.__cause__) if exc.__cause__ is not None else exc), file=sys.stderr, flush=True)
        return NO_DEVICE
    if args.check:
        return 0
    if args.file is None or not args.file.is_file():
        print(f"{LABEL}：找不到节目文件 {args.file}", file=sys.stderr, flush=True)
        return BAD_FILE
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    import miniaudio

    try:
        output.play(args.file, start_s=0.0, stop=stop, label=args.file.stem)
    except miniaudio.DecodeError:
        print(f"{LABEL}：无法解码节目文件 {args.file}（文件损坏，或不是 MP3）", file=sys.stderr, flush=True)
        return BAD_FILE
    except (miniaudio.MiniaudioError, OSError) as exc:
        why = f"系统错误码 {exc.errno}" if isinstance(exc, OSError) else sound_error(exc)
        print(f"{LABEL}：播放中途声音输出出错（{why}）", file=sys.stderr, flush=True)
        return LOST_DEVICE
    return 143 if stop.is_set() else 0


if __name__ == "__main__":
    sys.exit(main())
