"""CLI: `run` (the slot scheduler) and `jobs`."""

from __future__ import annotations

import click

from outreach.cli.base import Workspace, cli, echo_json, with_workspace


@cli.command("run")
@click.option("--mode", type=click.Choice(["play", "export"]), help="本次运行改用这个投放方式（覆盖 outreach.toml 的 deliver.mode）。")
@click.option("--monitor", metavar="来源", help="喇叭旁的话筒：alsa:设备名，或 file:路径（测试用）。"
              "单独播出的节目被话筒听到时记为“已监听”；只保存比对数值，不保存录音。")
@with_workspace
def run_cmd(mode: str | None, monitor: str | None, ws: Workspace) -> None:
    """运行定时播出调度（北京时间），直到收到 SIGTERM 或按 Ctrl+C。"""
    from outreach.delivery.scheduler import describe_counts, run
    from outreach.station.logs import log_to_stderr

    log_to_stderr()  # Beijing time, Chinese levels, APScheduler's and Alembic's lines in Chinese
    counts = run(ws.config, mode or ws.config.deliver.mode, monitor=monitor)
    click.echo(f"调度已正常停止（{describe_counts(counts)}）", err=True)


@cli.command("jobs")
@click.option("--json", "as_json", is_flag=True, help="以 JSON 列表输出。")
@with_workspace
def jobs_cmd(as_json: bool, ws: Workspace) -> None:
    """列出调度保存的任务和下次运行时间。"""
    from outreach.delivery.scheduler import list_jobs

    jobs = list_jobs(ws.config)
    if as_json:
        echo_json(jobs)
        return
    for job in jobs:
        click.echo(f"{job['id']:32} {job['next_run_time']}")
    click.echo(f"共 {len(jobs)} 个任务", err=True)
