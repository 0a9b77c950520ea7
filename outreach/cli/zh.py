"""Click's own words (Usage:, Options, Missing option ...) in Simplified Chinese.

Click marks its user-facing strings with gettext; each of its modules binds
`_` and `ngettext` at import. Rebinding those names to this table is the
gettext hook without shipping a .mo file. Unknown strings pass through
unchanged, so a newer click degrades to English, never to an error.
"""

from __future__ import annotations

import re

import click.core
import click.decorators
import click.exceptions
import click.formatting
import click.parser
import click.termui
import click.types

ZH: dict[str, str] = {
    "Usage:": "用法：",
    "Options": "选项",
    "Commands": "命令",
    "Positional arguments": "位置参数",
    "Show this message and exit.": "显示本帮助并退出。",
    "Show the version and exit.": "显示版本并退出。",
    "default: {default}": "默认：{default}",
    "required": "必填",
    "env var: {var}": "环境变量：{var}",
    "Error: {message}": "错误：{message}",
    "Try '{command} {option}' for help.": "运行 '{command} {option}' 查看帮助。",
    "Missing argument": "缺少参数",
    "Missing option": "缺少选项",
    "Missing parameter": "缺少参数",
    "Missing command.": "缺少命令。",
    "Missing {param_type}": "缺少{param_type}",
    "Missing parameter: {param_name}": "缺少参数：{param_name}",
    "Invalid value for {param_hint}: {message}": "{param_hint} 的值无效：{message}",
    "Invalid value: {message}": "值无效：{message}",
    "No such command {name!r}.": "没有命令 {name!r}。",
    "No such option {name!r}.": "没有选项 {name!r}。",
    "Option {name!r} does not take a value.": "选项 {name!r} 不接受值。",
    "Option {name!r} requires an argument.": "选项 {name!r} 需要一个值。",
    "Option {name!r} requires {nargs} arguments.": "选项 {name!r} 需要 {nargs} 个值。",
    "Got unexpected extra argument ({args})": "多余的参数（{args}）",
    "Got unexpected extra arguments ({args})": "多余的参数（{args}）",
    "Did you mean {possibility}?": "您是不是要找：{possibility}？",
    "(Did you mean one of: {possibilities}?)": "（您是不是要找：{possibilities}？）",
    "{value!r} is not {choice}.": "{value!r} 不是 {choice}。",
    "{value!r} is not one of {choices}.": "{value!r} 不在可选值 {choices} 之中。",
    "{value!r} is not a valid {number_type}.": "{value!r} 不是有效的{number_type}。",
    "{value} is not in the range {range}.": "{value} 不在范围 {range} 内。",
    "{value!r} does not match the format {format}.": "{value!r} 不符合格式 {format}。",
    "{value!r} does not match the formats {formats}.": "{value!r} 不符合格式 {formats}。",
    "{name} {filename!r} does not exist.": "{name} {filename!r} 不存在。",
    "{name} {filename!r} is a directory.": "{name} {filename!r} 是文件夹。",
    "{name} {filename!r} is a file.": "{name} {filename!r} 是文件。",
    "{name} {filename!r} is not readable.": "{name} {filename!r} 不可读。",
    "{name} {filename!r} is not writable.": "{name} {filename!r} 不可写。",
    "{name} {filename!r} is not executable.": "{name} {filename!r} 不可执行。",
    "Could not open file {filename!r}: {message}": "无法打开文件 {filename!r}：{message}",
    "file": "文件",
    "directory": "文件夹",
    "path": "路径",
    "Aborted!": "已取消。",
    "Repeat for confirmation": "再输入一次确认",
    "Error: The two entered values do not match.": "错误：两次输入不一致。",
    "Error: invalid input": "错误：输入无效",
    "Do you want to continue?": "是否继续？",
    "Confirm the action without prompting.": "不询问，直接确认。",
    "deprecated": "已弃用",
    "unknown error": "未知错误",
}


def gettext(message: str) -> str:
    return ZH.get(message, message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return gettext(singular if n == 1 else plural)


# A Han character or Chinese punctuation (CJK symbols, full-width forms, curly quotes).
_CJK = "\u3400-\u9fff\u3000-\u303f\uff00-\uffef\u2018\u2019\u201c\u201d"
_SOFT_BREAK = re.compile(f"([{_CJK}])[ \t]*\n[ \t]*(?=[{_CJK}])")


def join_chinese_lines(text: str) -> str:
    """`text` with each line break between two Chinese characters removed, outside `\\b` blocks.

    Click joins the lines of a help paragraph with a space, which in Chinese is a stray space
    (`不写入工作区 的播出记录`); Chinese joins them with nothing.
    """
    out: list[str] = []
    para: list[str] = []
    for line in [*text.split("\n"), ""]:
        if line:
            para.append(line)
            continue
        if para:
            block = "\n".join(para)
            out.append(block if para[0].strip() == "\b" else _SOFT_BREAK.sub(r"\1", block))
            para = []
        out.append("")
    return "\n".join(out[:-1])


def install() -> None:
    """Rebind click's gettext names to the Chinese table (idempotent)."""
    for module in (click.core, click.decorators, click.exceptions, click.formatting, click.parser,
                   click.termui, click.types):
        if hasattr(module, "_"):
            module._ = gettext  # type: ignore[attr-defined]
        if hasattr(module, "ngettext"):
            module.ngettext = ngettext  # type: ignore[attr-defined]
    # A type's name is its metavar in --help (--port INTEGER) and its word in "不是有效的{number_type}".
    for param_type, name in ((click.INT, "整数"), (click.FLOAT, "数字"), (click.STRING, "文字"),
                             (click.IntRange, "整数"), (click.FloatRange, "数字")):
        param_type.name = name
