"""The click group, the shared -w/--workspace option and error handling."""

from __future__ import annotations

import functools
import json
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from outreach.config import Config, load_config
from outreach.errors import OutreachError


@dataclass
class Workspace:
    """What every command gets: the workspace folder and its validated config."""

    path: Path

    @functools.cached_property
    def config(self) -> Config:
        return load_config(self.path)


class OutreachGroup(click.Group):
    """A group that turns OutreachError into `error: ...` and exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OutreachError as exc:
            if ctx.meta.get("outreach.verbose"):
                traceback.print_exc()
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)


@click.group(cls=OutreachGroup)
@click.option("--verbose", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """outreach: 农村大喇叭 and market-day safety outreach for county police."""
    ctx.meta["outreach.verbose"] = verbose


def with_workspace(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add -w/--workspace to a command and pass a `ws: Workspace` argument."""

    @click.option(
        "-w", "--workspace", "workspace_dir", default=".", show_default=True,
        type=click.Path(file_okay=False, path_type=Path), help="Workspace folder.",
    )
    @functools.wraps(fn)
    def wrapper(*args: Any, workspace_dir: Path, **kwargs: Any) -> Any:
        return fn(*args, ws=Workspace(workspace_dir.resolve()), **kwargs)

    return wrapper


def echo_json(data: Any) -> None:
    """Print `data` as UTF-8 JSON (Chinese kept readable)."""
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
