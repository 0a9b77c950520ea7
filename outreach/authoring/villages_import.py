"""The county's village list from Excel into county.yaml: read 村庄.xlsx, match, make ids, preview, write.

The sheet has the columns 乡镇, 村名, 人口, 喇叭类型 and, optionally, 早播出时间 and 晚播出时间 (or one
早/晚播出时间 column, `06:00/18:30`). A village is matched by its township and name and keeps its id; a new
township gets an id from its name in pinyin (大庄镇 → dazhuang), a new village `<township id>-NN`.
Nothing is deleted: villages the sheet does not list stay as they are. Any bad row stops the import,
and every bad row is named (第N行：…，怎么改), so the file is written whole or not at all.
"""

from __future__ import annotations

import io
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from outreach.authoring.editing import check_county, stamp
from outreach.authoring.review import diff
from outreach.content.names import make_id
from outreach.errors import RegistryError
from outreach.labels import SPEAKER, label
from outreach.planning.registry import SLOT_NAMES, Registry, Speaker

__all__ = ["VillageImportError", "SheetRow", "ImportPreview", "Change", "COLUMNS", "SPEAKER_WORDS", "SHEET_SPEAKER",
           "read_sheet", "preview_import", "registry_rows", "sample_sheet", "rows_to_json", "rows_from_json"]

MAX_ROWS = 5000
COLUMNS = ("乡镇", "村名", "人口", "喇叭类型", "早播出时间", "晚播出时间")
# Header words people use for each column (spaces and brackets are ignored when matching).
_HEADERS = {
    "township": ("乡镇", "乡镇名", "乡镇名称", "所属乡镇", "镇", "乡"),
    "name": ("村名", "村", "村庄", "村庄名称", "村名称", "行政村"),
    "population": ("人口", "常住人口", "人数", "人口数"),
    "speaker": ("喇叭类型", "喇叭", "类型", "播放方式", "广播方式"),
    "morning": ("早播出时间", "早间播出时间", "早播", "早间", "早上", "早"),
    "evening": ("晚播出时间", "晚间播出时间", "晚播", "晚间", "晚上", "晚"),
    "both": ("早/晚播出时间", "早晚播出时间", "播出时间"),
}
REQUIRED = ("township", "name", "population", "speaker")
SPEAKER_WORDS: Mapping[str, Speaker] = {
    **dict.fromkeys(("联网", "联网播放", "网络", "在线", "联网喇叭", "networked"), Speaker.NETWORKED),
    **dict.fromkeys(("站点", "广播站", "村广播站", "播放盒", "断网续播", "station"), Speaker.STATION),
    **dict.fromkeys(("u盘", "u盘离线", "离线", "优盘", "offline"), Speaker.OFFLINE),
}
"""喇叭类型 as written in the sheet (lower-cased) → the registry's speaker kind."""
SPEAKER_HINT = "联网、站点（村广播站）或 U盘"
_TIME = re.compile(r"(\d{1,2})\s*[:：点]\s*(\d{1,2})?\s*(?:[:：]\d{2})?\s*分?")
_TOWNSHIP_SUFFIXES = ("街道办事处", "街道", "镇", "乡")


class VillageImportError(RegistryError):
    """The sheet cannot be imported; `rows` lists every problem, each naming its row and the fix."""

    def __init__(self, message: str, rows: Sequence[str] = ()) -> None:
        super().__init__("\n  ".join([message, *rows]))
        self.rows = list(rows)


@dataclass(frozen=True)
class SheetRow:
    """One village as the sheet gives it; `slots` None when the sheet has no time columns."""

    line: int
    township: str
    name: str
    population: int
    speaker: Speaker
    slots: dict[str, str] | None = None  # slot name -> "HH:MM"; a missing slot keeps the county time


# --- reading the sheet ------------------------------------------------------------------------


def _norm(value: Any) -> str:
    return unicodedata.normalize("NFKC", str(value)).strip() if value is not None else ""


def _header_key(text: str) -> str | None:
    cleaned = re.sub(r"[\s（）()【】\[\]]|可选|必填", "", _norm(text)).replace("／", "/")
    return next((key for key, words in _HEADERS.items() if cleaned in words), None)


def _columns(header: Sequence[Any], where: str) -> dict[str, int]:
    found: dict[str, int] = {}
    for i, cell in enumerate(header):
        key = _header_key(cell) if cell is not None else None
        if key is not None and key not in found:
            found[key] = i
    missing = [COLUMNS[REQUIRED.index(k)] for k in REQUIRED if k not in found]
    if missing:
        raise VillageImportError(f"{where}：第一行（表头）缺少「{'」「'.join(missing)}」列；表头要写 "
                                 f"{'、'.join(COLUMNS[:4])}，可加 早播出时间、晚播出时间（见 samples/村庄.xlsx）")
    return found


def _clock(value: Any) -> str | None:
    """A cell as HH:MM: an Excel time, a fraction of a day, or text such as 6:30 and 6点半; '' for blank."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return ""
    if isinstance(value, datetime):
        value = value.time()
    if isinstance(value, time):
        return f"{value.hour:02d}:{value.minute:02d}"
    if isinstance(value, float) and 0 <= value < 1:
        minutes = round(value * 24 * 60)
        return f"{minutes // 60:02d}:{minutes % 60:02d}"
    text = _norm(value).replace("半", "30")
    m = _TIME.fullmatch(text)
    if m is None or int(m[1]) > 23 or int(m[2] or 0) > 59:
        return None
    return f"{int(m[1]):02d}:{int(m[2] or 0):02d}"


def _population(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        return value if 1 <= value <= 100_000 else None
    text = _norm(value).replace(",", "").replace("，", "").removesuffix("人")
    return _population(int(text)) if text.isdigit() else None


def _row_slots(cells: Sequence[Any], cols: Mapping[str, int], errors: list[str], line: int,
               defaults: Mapping[str, str]) -> dict[str, str] | None:
    """The row's own start times (a time equal to the county's is no override); None without time columns."""
    if not any(k in cols for k in ("morning", "evening", "both")):
        return None
    given: dict[str, Any] = {}
    if "both" in cols and _norm(_cell(cells, cols["both"])):
        parts = [p for p in re.split(r"[/、,，;；\s]+|-(?=\d)", _norm(_cell(cells, cols["both"]))) if p]
        if len(parts) != 2:
            errors.append(f"第{line}行：早/晚播出时间「{_norm(_cell(cells, cols['both']))[:20]}」要写两个时间，"
                          "如 06:00/18:30；或留空用全县统一时间")
            return {}
        given = dict(zip(SLOT_NAMES, parts, strict=True))
    for name in SLOT_NAMES:
        if name in cols:
            given.setdefault(name, _cell(cells, cols[name]))
    slots = {}
    for name, raw in given.items():
        hhmm = _clock(raw)
        what = "早播出时间" if name == "morning" else "晚播出时间"
        if hhmm is None:
            errors.append(f"第{line}行：{what}「{_norm(raw)[:20]}」不是时刻；请写成 时:分，如 06:30，"
                          f"或留空用全县统一时间（{defaults.get(name, '')}）")
        elif hhmm and hhmm != defaults.get(name):
            slots[name] = hhmm
    return slots


def _cell(cells: Sequence[Any], i: int) -> Any:
    return cells[i] if i < len(cells) else None


def _read_row(cells: Sequence[Any], cols: Mapping[str, int], line: int, errors: list[str],
              defaults: Mapping[str, str]) -> SheetRow | None:
    before = len(errors)
    township, name = _norm(_cell(cells, cols["township"])), _norm(_cell(cells, cols["name"]))
    if not township:
        errors.append(f"第{line}行：乡镇没有填写；请填乡镇名称，如 大庄镇")
    if not name:
        errors.append(f"第{line}行：村名没有填写；请填村名，如 大庄村")
    raw = _cell(cells, cols["population"])
    population = _population(raw)
    if population is None:
        errors.append(f"第{line}行：人口「{_norm(raw)[:20]}」不对；请填 1 到 100000 之间的整数（常住人口）")
    kind_text = _norm(_cell(cells, cols["speaker"]))
    kind = SPEAKER_WORDS.get(kind_text.lower())
    if kind is None:
        shown = f"「{kind_text[:20]}」不认识" if kind_text else "没有填写"
        errors.append(f"第{line}行：喇叭类型{shown}；请填 {SPEAKER_HINT} 之一")
    slots = _row_slots(cells, cols, errors, line, defaults)
    if len(errors) > before:
        return None
    return SheetRow(line, township, name, population, kind, slots)  # type: ignore[arg-type]


def read_sheet(source: Path | bytes, *, where: str, defaults: Mapping[str, str] | None = None) -> list[SheetRow]:
    """The villages of the first sheet of an .xlsx file (a path or its bytes); `where` names it in messages.

    `defaults` are the county's slot times (slot name -> HH:MM): a village given the county's time gets no
    override. Raises VillageImportError listing every bad row (第N行：…) when any row is bad.
    """
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(source) if isinstance(source, bytes) else source, read_only=True,
                             data_only=True)
    except Exception as exc:  # openpyxl raises zipfile, KeyError and its own errors for a file that is not xlsx
        raise VillageImportError(f"{where}：读不出来，不是 Excel 的 .xlsx 文件（{type(exc).__name__}）；"
                                 "请在 Excel 里“另存为” Excel 工作簿（*.xlsx）后再导入") from None
    try:
        lines = [(i, list(r)) for i, r in enumerate(book.worksheets[0].iter_rows(values_only=True), start=1)
                 if any(_norm(c) for c in r)]
    finally:
        book.close()
    if not lines:
        raise VillageImportError(f"{where}：表是空的；第一行写表头 {'、'.join(COLUMNS)}，下面每行一个村")
    if len(lines) > MAX_ROWS + 1:
        raise VillageImportError(f"{where}：有 {len(lines) - 1} 行，一次最多导入 {MAX_ROWS} 个村；请分成几个文件")
    cols = _columns(lines[0][1], where)
    errors: list[str] = []
    rows = [r for line, cells in lines[1:] if (r := _read_row(cells, cols, line, errors, defaults or {}))]
    seen: dict[tuple[str, str], int] = {}
    for r in rows:
        key = (r.township, r.name)
        if key in seen:
            errors.append(f"第{r.line}行：{r.township} {r.name} 与第{seen[key]}行重复；每个村只写一行，请删掉一行")
        seen.setdefault(key, r.line)
    if errors:
        raise VillageImportError(f"{where}：有 {len(errors)} 处问题，什么都没有导入：", errors)
    if not rows:
        raise VillageImportError(f"{where}：表头下面没有村；每行写一个村")
    return rows


# --- what changes in county.yaml ----------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """A village the import adds or changes: its sheet row, id, names and what changes (人口 1420 → 1500)."""

    line: int  # the sheet's row number, as a spreadsheet shows it
    village_id: str
    name: str
    township: str
    what: tuple[str, ...] = ()  # empty for a new village


@dataclass
class ImportPreview:
    """county.yaml before and after, and what the import does, for a person to check before it is written."""

    old_text: str
    new_text: str
    added: list[Change] = field(default_factory=list)
    changed: list[Change] = field(default_factory=list)
    unchanged: int = 0
    kept: list[str] = field(default_factory=list)  # villages of county.yaml the sheet does not list
    new_townships: list[tuple[str, str]] = field(default_factory=list)  # (id, name)

    @property
    def base(self) -> str:
        """The stamp of county.yaml as previewed (editing.save refuses to write over a file changed since)."""
        return stamp(self.old_text)

    @property
    def diff(self) -> str:
        return diff(self.old_text, self.new_text, "county.yaml（现在）", "county.yaml（导入后）")


def _round_trip() -> YAML:
    y = YAML()  # comments, key order and flow style survive a load and dump
    y.preserve_quotes, y.width = True, 4096
    y.indent(mapping=2, sequence=4, offset=2)
    return y


def _flow(pairs: Iterable[tuple[str, Any]]) -> CommentedMap:
    node = CommentedMap(pairs)
    node.fa.set_flow_style()
    return node


def _township_id(name: str, taken: set[str]) -> str:
    """大庄镇 → dazhuang: the name without 镇/乡/街道 in pinyin, unique among `taken`."""
    base = next((name[:-len(s)] for s in _TOWNSHIP_SUFFIXES if name.endswith(s) and len(name) > len(s)), name)
    return make_id(base, taken, fallback="xiang")


def _village_id(township_id: str, taken: set[str]) -> str:
    """The next free `<township id>-NN` (after the highest number the township already has)."""
    numbers = [int(m[1]) for t in taken if (m := re.fullmatch(rf"{re.escape(township_id)}-(\d+)", t))]
    n = max(numbers, default=0) + 1
    while f"{township_id}-{n:02d}" in taken:
        n += 1
    return f"{township_id}-{n:02d}"


def _slots_text(slots: Mapping[str, Any]) -> dict[str, str]:
    return {k: v.strftime("%H:%M") if isinstance(v, time) else str(v) for k, v in slots.items()}


def _slot_label(slots: Mapping[str, str], name: str) -> str:
    return slots.get(name, "全县统一时间")


def _what_changes(row: SheetRow, node: Mapping[str, Any]) -> list[str]:
    what = []
    if node.get("population") != row.population:
        what.append(f"人口 {node.get('population')} → {row.population}")
    if node.get("speaker") != row.speaker.value:
        old = str(node.get("speaker"))
        what.append(f"喇叭类型 {label(SPEAKER, old)} → {label(SPEAKER, row.speaker.value)}")
    if row.slots is not None:
        old_slots = _slots_text(node.get("slots") or {})
        for name, column in zip(SLOT_NAMES, ("早播出时间", "晚播出时间"), strict=True):
            if old_slots.get(name) != row.slots.get(name):
                what.append(f"{column} {_slot_label(old_slots, name)} → {_slot_label(row.slots, name)}")
    return what


def _set_village(node: CommentedMap, row: SheetRow) -> None:
    """Change only what differs, so the diff shows only that and comments stay put."""
    if node.get("population") != row.population:
        node["population"] = row.population
    if node.get("speaker") != row.speaker.value:
        node["speaker"] = row.speaker.value
    if row.slots is None or _slots_text(node.get("slots") or {}) == row.slots:
        return
    if not row.slots:
        node.pop("slots", None)
        return
    node["slots"] = _flow((k, DoubleQuotedScalarString(v)) for k, v in sorted(
        row.slots.items(), key=lambda kv: SLOT_NAMES.index(kv[0])))  # type: ignore[arg-type]


def _new_village(row: SheetRow, village_id: str, township_id: str) -> CommentedMap:
    pairs: list[tuple[str, Any]] = [("id", village_id), ("name", row.name), ("township", township_id),
                                    ("population", row.population), ("speaker", row.speaker.value)]
    if row.slots:
        pairs.append(("slots", _flow((k, DoubleQuotedScalarString(v)) for k, v in row.slots.items())))
    return _flow(pairs)


def _insert(villages: CommentedSeq, node: CommentedMap, township_id: str) -> None:
    """Put a new village after the last one of its township, so the file stays grouped; else at the end."""
    last = max((i for i, v in enumerate(villages) if isinstance(v, Mapping) and v.get("township") == township_id),
               default=len(villages) - 1)
    villages.insert(last + 1, node)


def _match(row: SheetRow, registry: Registry, towns: dict[str, str]) -> tuple[str | None, str | None]:
    """(township id, village id) of a row: by township name or id, then by the village's name (with or without 村)."""
    tid = towns.get(row.township) or (row.township if row.township in registry.townships else None)
    if tid is None:
        return None, None
    vid = next((v.id for v in registry.villages.values()
                if v.township_id == tid and v.name in (row.name, f"{row.name}村")), None)
    return tid, vid


def _apply(doc: CommentedMap, rows: Sequence[SheetRow], registry: Registry, out: ImportPreview) -> dict[str, int]:
    """Apply the rows to the loaded county.yaml `doc`, filling `out`; returns new village id -> sheet row."""
    towns = {t.name: t.id for t in registry.townships.values()}
    taken_t, taken_v = set(registry.townships), set(registry.villages)
    nodes = {v.get("id"): v for v in doc["villages"] if isinstance(v, Mapping)}
    lines: dict[str, int] = {}
    seen: set[str] = set()
    for row in rows:
        tid, vid = _match(row, registry, towns)
        if tid is None:
            tid = _township_id(row.township, taken_t)
            taken_t.add(tid)
            towns[row.township] = tid
            doc["townships"].append(_flow([("id", tid), ("name", row.township)]))
            out.new_townships.append((tid, row.township))
        if vid is None:
            vid = _village_id(tid, taken_v)
            taken_v.add(vid)
            _insert(doc["villages"], _new_village(row, vid, tid), tid)
            out.added.append(Change(row.line, vid, row.name, row.township))
        else:
            seen.add(vid)
            what = _what_changes(row, nodes[vid])
            if what:
                _set_village(nodes[vid], row)
                out.changed.append(Change(row.line, vid, registry.villages[vid].name, row.township, tuple(what)))
            else:
                out.unchanged += 1
        lines[vid] = row.line
    out.kept = [v.name for v in registry.villages.values() if v.id not in seen]
    return lines


def preview_import(county_text: str, rows: Sequence[SheetRow], registry: Registry, *, schedules_dir: Path,
                   players: Iterable[str] | None = None) -> ImportPreview:
    """county.yaml `county_text` with the sheet's villages applied, checked by the registry's own loader.

    `registry` is the county as it is now (from the same files). Raises VillageImportError when the result
    would not load, each problem naming the sheet row it comes from.
    """
    try:
        doc = _round_trip().load(county_text)
    except Exception as exc:  # ruamel raises many kinds; the file must be fixed by hand first
        raise VillageImportError(f"county.yaml 不是有效的 YAML（{exc}）；请先改好它再导入") from None
    if not isinstance(doc, CommentedMap) or not isinstance(doc.get("villages"), list) \
            or not isinstance(doc.get("townships"), list):
        raise VillageImportError("county.yaml 里没有 townships: 和 villages: 两个列表；请先改好它再导入")
    out = ImportPreview(county_text, "")
    lines = _apply(doc, rows, registry, out)
    buf = io.StringIO()
    _round_trip().dump(doc, buf)
    out.new_text = buf.getvalue()
    checked = check_county(schedules_dir, out.new_text, "", players=list(players) if players is not None else None)
    if not checked.ok:
        problems = [*checked.other, *(m for ms in checked.fields.values() for m in ms)]
        raise VillageImportError("导入后的 county.yaml 有问题，什么都没有写入：", [_row_of(p, lines) for p in problems])
    return out


_FIELD_WORDS = {"name": "村名", "population": "人口", "speaker": "喇叭类型", "slots.morning": "早播出时间",
                "slots.evening": "晚播出时间", "slots": "播出时间"}


def _row_of(problem: str, lines: Mapping[str, int]) -> str:
    """A registry problem about an imported village as its sheet row says it: 第N行：村名：… (no file or key)."""
    for vid, line in lines.items():
        m = re.search(rf"villages\[{re.escape(vid)}\](?:\.([\w.]+))?\s*[:：]?\s*", problem)
        if m:
            what = _FIELD_WORDS.get(m[1] or "", "")
            return f"第{line}行：{what + '：' if what else ''}{problem[m.end():]}"
    return re.sub(r"^\S*county\.yaml(:\d+)?:\s*", "county.yaml：", problem)


SHEET_SPEAKER: Mapping[str, str] = {Speaker.NETWORKED: "联网", Speaker.STATION: "站点", Speaker.OFFLINE: "U盘"}
"""The word the sheet writes for each speaker kind (read back by SPEAKER_WORDS)."""


def registry_rows(registry: Registry) -> list[tuple[Any, ...]]:
    """The county's villages as sheet rows (乡镇, 村名, 人口, 喇叭类型, 早/晚播出时间 when the village has its own)."""
    out = []
    for v in registry.villages.values():
        own = _slots_text(v.slot_overrides)
        township = registry.townships[v.township_id].name if v.township_id in registry.townships else v.township_id
        out.append((township, v.name, v.population, SHEET_SPEAKER[v.speaker], own.get("morning", ""),
                    own.get("evening", "")))
    return out


def sample_sheet(rows: Sequence[Sequence[Any]] = ()) -> bytes:
    """A 村庄.xlsx to fill in: the header row and `rows` (default: two example villages)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    sheet.title = "村庄"
    sheet.append(list(COLUMNS))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in rows or (("大庄镇", "大庄村", 2860, "联网", "", ""), ("大庄镇", "李家洼村", 640, "U盘", "06:00", "")):
        sheet.append(list(row))
    for letter, width in zip("ABCDEF", (12, 14, 10, 12, 14, 14), strict=True):
        sheet.column_dimensions[letter].width = width
    sheet.freeze_panes = "A2"
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def rows_to_json(rows: Sequence[SheetRow]) -> list[dict[str, Any]]:
    """The rows as the web's preview form carries them to 确认导入."""
    return [{"line": r.line, "township": r.township, "name": r.name, "population": r.population,
             "speaker": r.speaker.value, "slots": r.slots} for r in rows]


def rows_from_json(data: Any) -> list[SheetRow]:
    """Rows back from rows_to_json; VillageImportError for anything else (a form that was tampered with)."""
    try:
        rows = [SheetRow(int(d["line"]), str(d["township"]), str(d["name"]), int(d["population"]),
                         Speaker(d["speaker"]), None if d["slots"] is None else
                         {str(k): str(v) for k, v in d["slots"].items() if k in SLOT_NAMES})
                for d in data]
    except (TypeError, KeyError, ValueError, AttributeError):
        rows = []
    if not rows:
        raise VillageImportError("预览的内容丢失或不完整；请重新上传村庄名单")
    return rows
