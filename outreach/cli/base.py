"""The click group, the shared -w/--workspace option and error handling."""

from __future__ import annotations

import functools
import json
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click

from outreach.cli import zh
from outreach.config import CONFIG_NAME, TIMEZONE, Config, load_config
from outreach.dates import json_value
from outreach.errors import ConfigError, OutreachError
from outreach.files import clean_after_crash

zh.install()  # click's own words (用法、选项、缺少选项 ...) in Chinese

# Every line the CLI itself prints starts with one of these (or is Chinese prose);
# a domain message (Chinese too) follows ERROR/WARNING as it is.
ERROR = "错误："
WARNING = "警告："
ALERT = "警报："


@dataclass
class Workspace:
    """What every command gets: the workspace folder and its validated config."""

    path: Path

    @functools.cached_property
    def config(self) -> Config:
        return load_config(self.path)


OPTIONS_METAVAR = "[选项]"  # click's usage line: `用法： outreach [选项] 命令 [参数]...`
COMMAND_METAVAR = "命令 [参数]..."


def _chinese_help(command: click.Command) -> None:
    """Join the help's lines the Chinese way: click would put a space at each line break (`工作区 的播出记录`)."""
    for name in ("help", "short_help", "epilog"):
        if text := getattr(command, name):
            setattr(command, name, zh.join_chinese_lines(text))


class OutreachCommand(click.Command):
    """A command whose help is Chinese all through: `[选项]`, not `[OPTIONS]`; no stray spaces."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("options_metavar", OPTIONS_METAVAR)
        super().__init__(*args, **kwargs)
        _chinese_help(self)


class OutreachGroup(click.Group):
    """A group that turns OutreachError into `错误：...` and exit 1; its commands and subgroups are Chinese too."""

    command_class = OutreachCommand
    group_class = type  # subgroups are OutreachGroups

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("options_metavar", OPTIONS_METAVAR)
        kwargs.setdefault("subcommand_metavar", COMMAND_METAVAR)
        super().__init__(*args, **kwargs)
        _chinese_help(self)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OutreachError as exc:
            if ctx.meta.get("outreach.verbose"):
                traceback.print_exc()
            click.echo(f"{ERROR}{exc}", err=True)
            sys.exit(1)


@click.group(cls=OutreachGroup)
@click.option("--verbose", is_flag=True, help="出错时显示完整的调用栈（排查问题用）。")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """outreach：县交警大队和反诈中心的农村大喇叭、集市日安全宣传工具。

    在工作区文件夹（含 outreach.toml）里运行命令，或用 -w 目录 指定工作区；
    新建工作区：outreach init 目录。每个命令都可加 --help 查看说明。
    """
    ctx.meta["outreach.verbose"] = verbose


def check_workspace(folder: Path) -> None:
    """Refuse, in one line and before anything is written, a folder without outreach.toml."""
    if not (folder / CONFIG_NAME).is_file():
        raise ConfigError(f"{folder} 不是工作区（没有 {CONFIG_NAME}）；请在工作区里运行，"
                          "或用 -w 目录 指定工作区，或用 `outreach init 目录` 新建一个")


def with_workspace(fn: Callable[..., Any] | None = None, *, required: bool = True) -> Any:
    """Add -w/--workspace to a command and pass a `ws: Workspace` argument.

    With required=False the command runs without a workspace too and checks
    for itself (`check_workspace`) when it needs one.
    """

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @click.option(
            "-w", "--workspace", "workspace_dir", default=".", show_default=True,
            type=click.Path(file_okay=False, path_type=Path), help="工作区文件夹（含 outreach.toml）。",
        )
        @functools.wraps(fn)
        def wrapper(*args: Any, workspace_dir: Path, **kwargs: Any) -> Any:
            ws = Workspace(workspace_dir.resolve())
            if required:
                check_workspace(ws.path)
            if (ws.path / CONFIG_NAME).is_file():
                clean_workspace(ws)
            return fn(*args, ws=ws, **kwargs)

        return wrapper

    return decorate(fn) if fn is not None else decorate


def county_today() -> date:
    """Today's date in the county (Asia/Shanghai), read at the CLI edge only."""
    return datetime.now(ZoneInfo(TIMEZONE)).date()


def cli_date(text: str, field: str, *, today: date | None = None) -> date:
    """A date option as typed (2026-12-01, 2026/12/01, 12月1日); says on stderr which date a non-ISO form meant."""
    from outreach.dates import read_date

    found, note = read_date(text, field, today=today or county_today())
    if note:
        click.echo(note, err=True)
    return found


def existing_folder(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """Callback for --out FILE: the folder must exist, so a mistyped path creates no folders."""
    if value is not None and not value.parent.is_dir():
        raise click.BadParameter(f"文件夹 {value.parent} 不存在；请先建好它，或换一个位置", ctx, param)
    return value


def warn(message: object) -> None:
    """One `警告：` line on stderr."""
    click.echo(f"{WARNING}{message}", err=True)


def clean_workspace(ws: Workspace) -> list[Path]:
    """Remove what crashed runs left: stale `.part` files in build/ and the packs, stale temp folders."""
    folders = [ws.path / "build"]
    try:
        folders = [ws.config.build_path, ws.path / ws.config.deliver.export_dir]
    except OutreachError:
        pass  # the command itself reports the bad config
    return clean_after_crash(folders)


def echo_json(data: Any) -> None:
    """Print `data` as UTF-8 JSON (Chinese kept readable); instants in Beijing time (`dates.json_time`)."""
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=json_value))


def sheet_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--campaign, --from, --to, --township, --format and --out, as `coverage` and `log` take them."""
    options = [
        click.option("--campaign", "campaign_text", metavar="活动", help="只看这个活动，编号或名称（默认：全部活动）。"),
        click.option("--from", "start_text", metavar="日期", help="第一天，如 12月1日、昨天（默认：--to 所在月的 1 日）。"),
        click.option("--to", "end_text", metavar="日期", help="最后一天，含当天（默认：今天）。"),
        click.option("--township", "township_text", metavar="乡镇", help="只看这个乡镇的村（编号或名称）。"),
        click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "xlsx"]), default="table",
                     show_default=True, help="输出格式；csv 带 BOM，Excel 可直接打开；xlsx 要写 --out。"),
        click.option("--out", "--output", "out", type=click.Path(dir_okay=False, path_type=Path),
                     callback=existing_folder, metavar="文件", help="写入这个文件，而不是打印到屏幕。"),
    ]
    for option in reversed(options):
        func = option(func)
    return func
