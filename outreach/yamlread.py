"""Reading human-edited YAML files and collecting every problem in them, with file and line.

Used by the registry loader: mappings remember their line, an unquoted 18:30
stays the text "18:30" (not YAML 1.1's base-60 integer 1110), repeated keys
are errors, and each problem names file, line, key and fix.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from pydantic import BaseModel, ValidationError

__all__ = ["YamlMap", "Problems", "construct_timestamp", "Entry", "read_yaml", "check_keys", "validate_entry", "validate_items",
           "declared_ids"]


class YamlMap(dict[Any, Any]):
    """A YAML mapping that knows the line it starts on (1-based)."""

    line = 0


class _Loader(yaml.SafeLoader):
    """SafeLoader with line-aware mappings, HH:MM kept as text and repeated keys refused."""


# Without this, YAML 1.1 reads an unquoted 18:30 as the base-60 integer 1110.
_Loader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
for _ch in "0123456789":
    _Loader.yaml_implicit_resolvers.setdefault(_ch, []).insert(
        0, ("tag:yaml.org,2002:str", re.compile(r"^\d{1,2}:\d{2}$")))


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> YamlMap:
    loader.flatten_mapping(node)
    result = YamlMap()
    result.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, Hashable) or key in result:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} is repeated or not valid; keep one", key_node.start_mark)
        result[key] = loader.construct_object(value_node, deep=True)
    return result


def construct_timestamp(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    # An impossible date such as 2026-02-30 stays text, so validation names its key.
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except ValueError:
        return loader.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", construct_timestamp)


class Problems(list[tuple[str, int, str]]):
    """Problems found so far; lines() lists them sorted by file and line."""

    def add(self, path: Path, line: int | None, where: str, what: str) -> None:
        """Record `what` is wrong at `where` (a key path such as villages[x].township; may be empty)."""
        self.append((str(path), line or 0, f"{path}{f':{line}' if line else ''}: {where}{': ' if where else ''}{what}"))

    def lines(self) -> list[str]:
        return [text for _, _, text in sorted(self, key=lambda p: p[:2])]


def read_yaml(path: Path, problems: Problems) -> YamlMap | None:
    """The top-level mapping of a UTF-8 YAML file, or None after recording why it cannot be read."""
    if not path.is_file():
        problems.add(path, None, "", "file is missing; create it (copy it from the sample workspace)")
        return None
    try:
        raw = path.read_bytes()
    except OSError as exc:
        problems.add(path, None, "", f"cannot be read ({exc.strerror}); check its permissions")
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        problems.add(path, line, "", f"byte 0x{raw[exc.start]:02x} is not UTF-8; save the file as UTF-8")
        return None
    try:
        doc = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problems.add(path, mark.line + 1 if mark else None, "", f"not valid YAML ({exc.problem}); fix the syntax")
        return None
    except yaml.YAMLError as exc:
        problems.add(path, None, "", f"not valid YAML ({exc}); fix the syntax")
        return None
    if not isinstance(doc, YamlMap):
        problems.add(path, None, "", "must be a mapping of keys (see the comments in the sample file)")
        return None
    return doc


def check_keys(doc: YamlMap, path: Path, required: tuple[str, ...], optional: tuple[str, ...],
               problems: Problems) -> None:
    """Record missing required top-level keys and unknown ones."""
    for key in required:
        if key not in doc:
            problems.add(path, None, key, "is missing; add it")
    for key in doc:
        if key not in required + optional:
            problems.add(path, doc.line, str(key), f"unknown key; expected one of: {', '.join(required + optional)}")


def _describe(err: Any) -> str:
    if err["type"] == "missing":
        return "is missing; add it"
    if err["type"] == "extra_forbidden":
        return "unknown key; remove it or fix its spelling"
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] != "value_error" and isinstance(err.get("input"), (str, int, float)):
        msg += f" (got {err['input']!r})"
    return msg


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
        problems.add(path, doc.line, key, "must be a list of entries, each starting with '- '")
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
        problems.add(path, line, label, "must be a mapping of keys (key: value lines)")
        return None
    try:
        return model.model_validate({**entry, **extra})
    except ValidationError as exc:
        for err in exc.errors():
            where = label + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"] if p != "[key]")
            problems.add(path, line, where, _describe(err))
        return None


def declared_ids(doc: YamlMap | None, key: str) -> list[str]:
    """Every id written under doc[key], valid entry or not (so one bad entry causes one error)."""
    entries = doc.get(key) if doc is not None else None
    entries = entries if isinstance(entries, list) else []
    return [e["id"] for e in entries if isinstance(e, dict) and isinstance(e.get("id"), str)]
