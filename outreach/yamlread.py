"""Reading human-edited YAML files and collecting every problem in them, with file and line.

`YamlLoader` reads every hand-edited file (the registry, campaigns, script front matter):
mappings remember their line, and YamlOptions say what differs between the files (an
unquoted 18:30 stays the text "18:30" rather than YAML 1.1's base-60 integer 1110; dates
kept as text; repeated keys refused). The registry loader collects its problems in
`Problems`, each naming file, line, key and fix.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError
from yaml.constructor import ConstructorError

__all__ = ["GuardedLoader", "LimitError", "YamlLoader", "YamlMap", "YamlOptions", "load_yaml", "load_yaml_and_nodes",
           "Problem", "Problems", "construct_timestamp", "Entry", "read_yaml", "check_keys", "validate_entry", "validate_items",
           "declared_ids", "describe_error", "yaml_problem", "StrictModel"]


class StrictModel(BaseModel):
    """The base of every model read from a hand-edited file (outreach.toml, the registry).

    Unknown keys are errors (a typo must not be ignored silently), values are frozen, and a
    field with an alias (township: for township_id) may also be given by its own name.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class YamlMap(dict[Any, Any]):
    """A YAML mapping that knows the line it starts on (1-based)."""

    line = 0


# Hand-edited files are read by the scheduler and the web server: a YAML alias bomb ("billion
# laughs"), a merge-key bomb or deep nesting must be refused while composing, before anything
# expands it. Real workspace files use few aliases and nest a handful of levels.
MAX_YAML_CHARS = 5_000_000
MAX_YAML_DEPTH = 64
MAX_ALIAS_EXPANSION = 10_000  # nodes that aliases add beyond those written in the file


class LimitError(yaml.MarkedYAMLError):
    """A document over one of the limits above; its problem text is Chinese and says what to fix."""


class GuardedLoader(yaml.SafeLoader):
    """SafeLoader that refuses huge documents, deep nesting and aliases that expand beyond a small budget."""

    def __init__(self, stream: Any) -> None:
        if isinstance(stream, (str, bytes)) and len(stream) > MAX_YAML_CHARS:
            raise LimitError(problem=f"文件太大（{len(stream):,} 个字符，最多 {MAX_YAML_CHARS:,}）；请拆分或删减内容")
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise LimitError(problem=f"嵌套超过 {MAX_YAML_DEPTH} 层；请检查缩进和括号，工作区文件不需要这么深",
                                 problem_mark=self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self) -> Any:
        node = super().compose_document()
        if node is not None:
            _check_expansion(node)
        return node


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a node graph whose aliases add more than MAX_ALIAS_EXPANSION nodes (or that refers to itself)."""
    sizes: dict[int, int] = {}
    distinct = 0
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    on_path: set[int] = set()
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in _children(node))
            if sizes[key] - distinct > MAX_ALIAS_EXPANSION:
                raise LimitError(problem=f"别名（*名字）展开后超过 {MAX_ALIAS_EXPANSION:,} 项；"
                                         "请直接写出内容，不要层层引用别名", problem_mark=node.start_mark)
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise LimitError(problem="别名（*名字）引用了包含它自己的内容；请直接写出内容",
                             problem_mark=node.start_mark)
        on_path.add(key)
        distinct += 1
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in sizes)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


@dataclass(frozen=True)
class YamlOptions:
    """What differs between the hand-edited files YamlLoader reads; the defaults are the registry's."""

    clock_text: bool = True
    """An unquoted 18:30 stays the text "18:30" (YAML 1.1 reads it as the base-60 integer 1110)."""
    dates: Literal["date", "text"] = "date"
    """"date": a date becomes a date and an impossible one such as 2026-02-30 stays text, so validation
    names its key; "text": every date stays text for the caller to parse with its own message."""
    repeated_key: str | None = "键 {key!r} 重复了或不能作为键（只保留一个）"
    """The refusal of a key written twice in one mapping ({key} is the key); None keeps the last one."""
    refuse_unhashable: bool = True
    """A key that cannot be one (a list, a mapping) is refused in repeated_key's words; else PyYAML's."""


class YamlLoader(GuardedLoader):
    """The one loader of hand-edited YAML: GuardedLoader's limits, mappings as YamlMap (line-aware).

    `load_yaml` and `load_yaml_and_nodes` run it with the caller's YamlOptions.
    """

    def __init__(self, stream: Any, options: YamlOptions | None = None) -> None:
        super().__init__(stream)
        self.options = options or YamlOptions()
        self.yaml_implicit_resolvers = _RESOLVERS[(self.options.clock_text, self.options.dates)]


def _resolvers(clock_text: bool, dates: str) -> dict[Any, list[Any]]:
    table = {first: [(tag, rx) for tag, rx in resolvers if dates == "date" or tag != "tag:yaml.org,2002:timestamp"]
             for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    if clock_text:
        for first in "0123456789":
            table.setdefault(first, []).insert(0, ("tag:yaml.org,2002:str", re.compile(r"^\d{1,2}:\d{2}$")))
    return table


_RESOLVERS = {(clock, dates): _resolvers(clock, dates) for clock in (True, False) for dates in ("date", "text")}


def _construct_map(loader: YamlLoader, node: yaml.MappingNode) -> YamlMap:
    loader.flatten_mapping(node)
    result = YamlMap()
    result.line = node.start_mark.line + 1
    refusal = loader.options.repeated_key
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, Hashable):
            if refusal is not None and loader.options.refuse_unhashable:
                raise ConstructorError(None, None, refusal.format(key=key), key_node.start_mark)
            return yaml.constructor.BaseConstructor.construct_mapping(loader, node)  # raises PyYAML's complaint
        if refusal is not None and key in result:
            raise ConstructorError(None, None, refusal.format(key=key), key_node.start_mark)
        result[key] = loader.construct_object(value_node, deep=True)
    return result


def construct_timestamp(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    # An impossible date such as 2026-02-30 stays text, so validation names its key.
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except ValueError:
        return loader.construct_scalar(node)


YamlLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
YamlLoader.add_constructor("tag:yaml.org,2002:timestamp", construct_timestamp)


def load_yaml(text: str, options: YamlOptions | None = None) -> Any:
    """The document in `text`, read by YamlLoader with `options` (raises yaml.YAMLError)."""
    loader = YamlLoader(text, options)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def load_yaml_and_nodes(text: str, options: YamlOptions | None = None) -> tuple[Any, yaml.Node | None]:
    """The document in `text` and its node tree (lines and raw keys), from one parse."""
    loader = YamlLoader(text, options)
    try:
        root = loader.get_single_node()
        return (loader.construct_document(root) if root is not None else None), root
    finally:
        loader.dispose()


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a hand-edited file (registry, campaigns, a script): where, and the fix.

    `text` is the line shown to people, laid out by the reader of that kind of file (each keeps
    its own wording); str() gives it. It takes no part in comparisons.
    """

    path: Path
    field: str
    """The field or key path, such as villages[x].township or targets.townships; "" for the whole file or entry."""
    message: str
    """What is wrong and the fix, in Chinese, without the location."""
    line: int | None = None
    entry: str | None = None
    """The id of the entry (a campaign) the problem belongs to, when it has one."""
    text: str = dataclasses.field(default="", compare=False, repr=False)

    def __str__(self) -> str:
        return self.text or self.located()

    def located(self) -> str:
        """`path:LINE: field：message`: an ASCII colon after the location (tools parse it), a full-width
        one between the key path and the Chinese text."""
        return f"{self.path}{f':{self.line}' if self.line else ''}: {self.field}{'：' if self.field else ''}{self.message}"


class Problems(list[Problem]):
    """Problems found so far; lines() lists them sorted by file and line."""

    def add(self, path: Path, line: int | None, where: str, what: str) -> None:
        """Record `what` is wrong at `where` (a key path such as villages[x].township; may be empty)."""
        self.append(Problem(Path(path), where, what, line or None))

    def lines(self) -> list[str]:
        return [str(p) for p in sorted(self, key=lambda p: (str(p.path), p.line or 0))]


def read_yaml(path: Path, problems: Problems) -> YamlMap | None:
    """The top-level mapping of a UTF-8 YAML file, or None after recording why it cannot be read."""
    if not path.is_file():
        problems.add(path, None, "", "文件不存在；请创建它（可从示例工作区复制）")
        return None
    try:
        raw = path.read_bytes()
    except OSError as exc:
        problems.add(path, None, "", f"无法读取（{exc.strerror}）；请检查文件权限")
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        problems.add(path, line, "", f"字节 0x{raw[exc.start]:02x} 不是 UTF-8 编码；请把文件另存为 UTF-8")
        return None
    try:
        doc = load_yaml(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problems.add(path, mark.line + 1 if mark else None, "", f"不是有效的 YAML：{yaml_problem(exc)}；请修正语法")
        return None
    except yaml.YAMLError as exc:
        problems.add(path, None, "", f"不是有效的 YAML：{yaml_problem(exc)}；请修正语法")
        return None
    if not isinstance(doc, YamlMap):
        problems.add(path, None, "", "内容必须是“键: 值”的映射（参见示例文件里的注释）")
        return None
    return doc


# PyYAML's problem texts (exc.problem), most specific first, and what they mean for a person editing the file.
_YAML_PROBLEMS: tuple[tuple[str, str], ...] = (
    (r"mapping values are not allowed here",
     "这里不能再出现“键: 值”（常见原因：冒号后少了空格、缩进不对，或文字里的冒号没有加引号）"),
    (r"could not find expected ':'", "找不到应有的冒号 ':'（常见原因：上一行的键后少了冒号，或引号没有闭合）"),
    (r"expected ',' or '\]'", "方括号 [ ] 没有闭合，或列表项之间少了逗号"),
    (r"expected ',' or '\}'", "花括号 { } 没有闭合，或各项之间少了逗号"),
    (r"found character '\\t' that cannot start any token|found a tab character", "这里有制表符（Tab），YAML 只能用空格缩进"),
    (r"found character .* that cannot start any token", "这里有一个不能出现在此处的字符，请删除它，或给整段文字加引号"),
    (r"found unexpected end of stream", "文件意外结束（常见原因：引号或括号没有闭合）"),
    (r"found unknown escape character", "双引号里有无法识别的反斜杠转义，请改用单引号，或把 \\ 写成 \\\\"),
    (r"found undefined alias", "引用了未定义的别名（*名字），请先用 &名字 定义，或删除这个 *"),
    (r"found duplicate anchor", "锚点（&名字）重复定义了，请改用不同的名字"),
    (r"expected <block end>", "缩进不一致，请对齐这一行和上一行的缩进"),
    (r"did not find expected key", "找不到应有的键（常见原因：缩进不对，或文字里有需要加引号的字符）"),
    (r"did not find expected '-' indicator", "列表项缺少开头的 '- '（常见原因：缩进不对）"),
    (r"expected the node content", "这里缺少值，或方括号、花括号里混入了 '- ' 开头的列表行"),
    (r"did not find expected node content|expected a node", "这里缺少值，请补上，或删除多余的符号"),
    (r"found another document", "文件里只能有一份内容，请删除多余的 ---"),
    (r"expected alphabetic or numeric character", "& 或 * 后面要跟名字，如果这是普通文字，请加引号"),
    (r"found unexpected ':'", "这里多了一个冒号，如果冒号是文字的一部分，请给整段文字加引号"),
    (r"while scanning a simple key", "键没有写完（常见原因：少了冒号，或文字跨了行）"),
    (r"could not determine a constructor for the tag", "不认识的标签（! 开头），请删除它，或给整段文字加引号"),
)


def yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's complaint about a file's syntax as a short Chinese explanation (without the location).

    A problem PyYAML words in a way not known here is quoted after （YAML 原文：…）.
    """
    if isinstance(exc, (ConstructorError, LimitError)) and re.search(r"[\u4e00-\u9fff]", exc.problem or ""):
        return str(exc.problem)  # our own, already Chinese (a repeated key, a limit)
    if isinstance(exc, yaml.reader.ReaderError):
        return f"第 {exc.position + 1} 个字符是不能出现在 YAML 里的控制字符（#x{exc.character:04x}），请删除它" \
            if isinstance(exc.character, int) else "文件里有不能出现在 YAML 里的字符，请删除它"
    problem = getattr(exc, "problem", None) or ""
    context = getattr(exc, "context", None) or ""
    for pattern, meaning in _YAML_PROBLEMS:
        if re.search(pattern, problem) or (not problem and re.search(pattern, context)):
            return meaning
    original = problem or context or str(exc).splitlines()[0]
    return f"语法错误（YAML 原文：{original}）"


def check_keys(doc: YamlMap, path: Path, required: tuple[str, ...], optional: tuple[str, ...],
               problems: Problems) -> None:
    """Record missing required top-level keys and unknown ones."""
    for key in required:
        if key not in doc:
            problems.add(path, None, key, "缺少此项；请补上")
    for key in doc:
        if key not in required + optional:
            problems.add(path, doc.line, str(key), f"未知的键；只能是：{'、'.join(required + optional)}")


def _quoted(expected: str) -> str:
    """pydantic's "'a', 'b' or 'c'" as 'a'、'b' 或 'c'."""
    items = re.findall(r"'(?:[^'\\]|\\.)*'|[^,' ]+(?= or |,|$)", expected.replace(" or ", ", "))
    items = [i for i in items if i.strip()]
    if len(items) < 2:
        return expected
    return "、".join(items[:-1]) + " 或 " + items[-1]


# Known patterns of string fields, described for a person (the regex itself is no help to one).
_PATTERNS = {
    r"^[a-z0-9][a-z0-9-]*$": "编号只能用小写字母、数字和 '-'，且以字母或数字开头（如 winter-traffic）",
    r"^[+-]\d+%$": "须写成 +10% 或 -5% 这样的百分比",
    r"^[+-]\d+Hz$": "须写成 +0Hz 或 -5Hz 这样的形式",
}
# pydantic error types whose Chinese needs only the error's context ({ge}, {max_length}, ...) and {got},
# the bad value as （现在是 …）.
_SIMPLE = {
    "missing": "缺少此项；请补上",
    "extra_forbidden": "未知的键；请删除它或检查拼写",
    "int_parsing": "须为整数{got}；请写一个整数，如 10",
    "int_type": "须为整数{got}；请写一个整数，如 10",
    "int_from_float": "须为整数，不能带小数{got}；请写一个整数",
    "int_parsing_size": "数字太大{got}；请检查这个数",
    "finite_number": "须为普通的有限数字{got}；不能是 inf 或 nan",
    "bool_parsing": "须为 true 或 false{got}",
    "bool_type": "须为 true 或 false{got}",
    "string_too_long": "太长了，最多 {max_length} 个字符；请缩短",
    "greater_than_equal": "不能小于 {ge}{got}",
    "less_than_equal": "不能大于 {le}{got}",
    "greater_than": "须大于 {gt}{got}",
    "less_than": "须小于 {lt}{got}",
    "multiple_of": "须是 {multiple_of} 的倍数{got}",
    "too_long": "最多 {max_length} 项（现在有 {actual_length} 项）；请删掉多余的",
    "none_required": "这里不能填值{got}；请删掉它",
    "hashable_type": "不能作为键；请改成文字",
}
# Families of types sharing one wording, by the type's start (most specific first).
_FAMILIES = (
    (("float_", "decimal_"), "须为数字{got}；请写一个数，如 1.5"),
    (("string_type", "string_unicode"), "须为文字{got}；请写成文字，必要时加引号"),
    (("list_type", "tuple_type", "set_type", "frozen_set_type", "iterable_type"), "须为列表，如 [a, b]{got}"),
    (("dict_type", "mapping_type", "model_type", "model_attributes_type", "dataclass_type"), "须为“键: 值”的映射{got}"),
    (("datetime",), "不是日期时间{got}；请写成 YYYY-MM-DD HH:MM"),
    (("date",), "不是日期{got}；请写成 YYYY-MM-DD，如 2026-12-01"),
    (("time",), "不是时刻{got}；请写成 HH:MM，如 06:30"),
    (("path_type", "url_type", "url_parsing"), "须为路径或地址文字{got}"),
)


def _shown(v: Any) -> Any:
    """A context value as a person writes it: 10 rather than 10.0, 2026-12-01 rather than a repr."""
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v.isoformat() if hasattr(v, "isoformat") else v


def describe_error(err: Any) -> str:
    """One pydantic error (an item of ValidationError.errors()) as Chinese: what is wrong, the bad value, the fix.

    The location (file, line, key path) is the caller's to add. Our own validators' ValueError texts
    are Chinese already and pass through; pydantic's English `msg` is never shown.
    """
    kind = str(err.get("type", ""))
    ctx = err.get("ctx") or {}
    value = err.get("input")
    got = f"（现在是 {value!r}）" if isinstance(value, (str, int, float)) else ""
    if kind in ("value_error", "assertion_error"):
        return str(err.get("msg", "")).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind in _SIMPLE:
        return _SIMPLE[kind].format(got=got, **{k: _shown(v) for k, v in ctx.items()})
    if kind == "string_too_short":
        n = ctx.get("min_length", 1)
        return "不能为空；请填写" if n == 1 else f"至少要 {n} 个字符{got}"
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        return f"{_PATTERNS.get(pattern, f'格式不对，须符合 {pattern}')}{got}"
    if kind in ("literal_error", "enum"):
        return f"只能是 {_quoted(str(ctx.get('expected', '')))}{got}"
    if kind == "too_short":
        n = ctx.get("min_length", 1)
        return "不能为空；至少写一项" if n == 1 else f"至少要有 {n} 项（现在有 {ctx.get('actual_length')} 项）"
    for starts, wording in _FAMILIES:
        if kind.startswith(starts):
            return wording.format(got=got)
    loc = ".".join(str(p) for p in err.get("loc", ()) if p != "[key]")
    shown = f" {value!r}" if isinstance(value, (str, int, float, bool)) or value is None else ""
    return f"{loc or '这一项'}的值{shown}不符合要求（校验类型 {kind}）；请对照示例文件改正"


class Entry(NamedTuple):
    """A validated list entry and where it was written."""

    item: Any
    line: int | None
    label: str  # e.g. villages[dazhuang-03] or blackouts[1]


def validate_items(doc: YamlMap | None, key: str, model: type[BaseModel], path: Path,
                   problems: Problems) -> list[Entry]:
    """Validate each entry of the list doc[key]; return the good ones."""
    entries = doc.get(key) if doc is not None else None
    if doc is None or entries is None:
        return []
    if not isinstance(entries, list):
        problems.add(path, doc.line, key, "须为列表，每一项以 '- ' 开头")
        return []
    good: list[Entry] = []
    for i, entry in enumerate(entries):
        line = getattr(entry, "line", None)
        has_id = isinstance(entry, dict) and isinstance(entry.get("id"), str)
        label = f"{key}[{entry['id']}]" if has_id else f"{key}[{i}]"
        item = validate_entry(model, entry, path, line, label, problems)
        if item is not None:
            good.append(Entry(item, line, label))
    return good


def validate_entry(model: type[BaseModel], entry: Any, path: Path, line: int | None, label: str,
                   problems: Problems, **extra: Any) -> Any:
    """One entry as `model`, or None after recording its problems under `label`."""
    if not isinstance(entry, dict):
        problems.add(path, line, label, "须为“键: 值”的映射（每行一个 键: 值）")
        return None
    try:
        return model.model_validate({**entry, **extra})
    except ValidationError as exc:
        for err in exc.errors():
            where = label + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"] if p != "[key]")
            problems.add(path, line, where, describe_error(err))
        return None


def declared_ids(doc: YamlMap | None, key: str) -> list[str]:
    """Every id written under doc[key], valid entry or not (so one bad entry causes one error)."""
    entries = doc.get(key) if doc is not None else None
    entries = entries if isinstance(entries, list) else []
    return [e["id"] for e in entries if isinstance(e, dict) and isinstance(e.get("id"), str)]
