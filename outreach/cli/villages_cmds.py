"""CLI: `villages import` (the county's village list from Excel into county.yaml) and `villages template`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from outreach.cli.base import Workspace, cli, existing_folder, with_workspace

if TYPE_CHECKING:
    from outreach.authoring.villages_import import ImportPreview

COUNTY = "county.yaml"
LISTED = 20  # added and changed villages listed one a line; the rest as a count


@cli.group("villages")
def villages() -> None:
    """村庄名单：从 Excel 导入（outreach villages import），或写出一份表来改（outreach villages template）。"""


@villages.command("import")
@click.argument("xlsx_file", metavar="文件", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--yes", "-y", is_flag=True, help="不再询问：显示要改的地方后直接写入。")
@with_workspace
def import_cmd(xlsx_file: Path, yes: bool, ws: Workspace) -> None:
    """从 Excel 村庄名单（.xlsx）导入村庄，写进 schedules/county.yaml。

    \b
    第一行是表头：乡镇、村名、人口、喇叭类型，可加 早播出时间、晚播出时间
    （或一列 早/晚播出时间，写 06:00/18:30）。喇叭类型写 联网、站点 或 U盘；
    播出时间留空表示用全县统一时间。用 outreach villages template 文件 可以
    写出一份现在的名单来改。

    \b
    按乡镇和村名对上的村保留原来的编号，只改表里不同的地方；新的乡镇和村
    自动编号（乡镇名的拼音，村为 乡镇编号-两位数）；表里没有的村不删。
    先列出 county.yaml 要改的地方，确认后才写入；有一行不对就什么都不写，
    并按“第N行：…”说明怎么改。
    """
    from outreach.authoring.editing import save
    from outreach.authoring.villages_import import preview_import, read_sheet
    from outreach.planning.registry import load_registry

    config = ws.config
    registry = load_registry(config.schedules_dir, players=config.player_names)
    defaults = {name: spec.start.strftime("%H:%M") for name, spec in registry.slots.items()}
    rows = read_sheet(xlsx_file, where=xlsx_file.name, defaults=defaults)
    path = config.schedules_dir / COUNTY
    preview = preview_import(path.read_bytes().decode("utf-8-sig"), rows, registry,
                             schedules_dir=config.schedules_dir, players=config.player_names)
    _echo_preview(preview)
    if preview.new_text == preview.old_text:
        click.echo(f"{COUNTY} 已经和表里一致，没有要写入的")
        return
    if not yes:
        click.echo("（不想逐次确认时加 --yes）")
        if not click.confirm(f"写入 {path}？", default=False):
            click.echo(f"没有写入；{COUNTY} 保持原样")
            return
    save(path, preview.new_text, preview.base)
    click.echo(f"已写入 {path}；运行 `outreach registry` 查看全县，`outreach plan --from 明天 --to 后天` 看排播")


def _echo_preview(p: ImportPreview) -> None:
    """Counts, the villages added and changed (at most LISTED each), and the diff of county.yaml."""
    click.echo(f"导入预览：新增 {len(p.added)} 个村，修改 {len(p.changed)} 个，不变 {p.unchanged} 个；"
               f"表里没有的 {len(p.kept)} 个村保留不动")
    for tid, name in p.new_townships:
        click.echo(f"  新乡镇：{name}（编号 {tid}）")
    for change in p.added[:LISTED]:
        click.echo(f"  新增：第{change.line}行 {change.township} {change.name}（编号 {change.village_id}）")
    for change in p.changed[:LISTED]:
        click.echo(f"  修改：第{change.line}行 {change.township} {change.name}：{'；'.join(change.what)}")
    more = max(0, len(p.added) - LISTED) + max(0, len(p.changed) - LISTED)
    if more:
        click.echo(f"  另有 {more} 个村，见下面 {COUNTY} 的改动")
    if p.diff:
        click.echo(f"\n{COUNTY} 的改动（- 现在，+ 导入后）：")
        click.echo(p.diff, nl=False)


@villages.command("template")
@click.argument("xlsx_file", metavar="文件", type=click.Path(dir_okay=False, path_type=Path),
                callback=existing_folder)
@with_workspace
def template_cmd(xlsx_file: Path, ws: Workspace) -> None:
    """写出村庄名单表（.xlsx）：现在县里的每个村一行，改好后用 outreach villages import 导入。"""
    from outreach.authoring.villages_import import registry_rows, sample_sheet
    from outreach.files import write_bytes_atomic
    from outreach.planning.registry import load_registry

    registry = load_registry(ws.config.schedules_dir)
    write_bytes_atomic(xlsx_file, sample_sheet(registry_rows(registry)))
    click.echo(f"已写入 {xlsx_file}：{len(registry.villages)} 个村；改好后用 `outreach villages import` 导入这个文件")
