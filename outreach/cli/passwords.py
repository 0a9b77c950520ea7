"""Reading a password on the command line: typed at a hidden prompt, or the first line of stdin with --password-stdin."""

from __future__ import annotations

import sys

import click

from outreach.errors import OutreachError

PASSWORD_STDIN_HELP = "从标准输入的第一行读取密码（没有终端时用，例如脚本里）。"


class NoTerminal(OutreachError):
    """A password is needed, there is no terminal to type it into, and --password-stdin was not given."""


def stdin_is_terminal() -> bool:
    """True when a person can type at a hidden prompt (stdin is a terminal)."""
    return sys.stdin.isatty()


def read_password(*, from_stdin: bool, confirm: bool, prompt: str, example: str) -> str:
    """The password: stdin's first line with `from_stdin`, else typed twice (`confirm`) or once at a hidden prompt.

    Without a terminal, a hidden prompt would echo the password (click only warns, in English)
    and then read nothing, so it is refused with the fix instead. `example` is the command with
    --password-stdin, shown in that message.

    Raises:
        NoTerminal: no terminal and no --password-stdin.
    """
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not stdin_is_terminal():
        raise NoTerminal(f"没有终端，无法安全地输入密码；请加 --password-stdin，从标准输入传入密码，例如：{example}")
    return str(click.prompt(prompt, hide_input=True, confirmation_prompt=confirm))
