"""The thin command-line layer: parse input, call the domain, report errors."""

from outreach.cli import (  # noqa: F401  (each module registers its commands)
    coverage_cmds,
    deliver_cmds,
    export_cmds,
    log_cmds,
    plan_cmds,
    records_cmds,
    registry_cmds,
    render_cmds,
    scripts_cmds,
    station_cmds,
    status_cmds,
    villages_cmds,
    web_cmds,
)
from outreach.cli.base import cli

__all__ = ["cli", "main"]


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="outreach")
