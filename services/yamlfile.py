"""YAML files that report errors by file and line.

``load(path)`` parses safely and remembers the line of every mapping key and sequence item, so
a pydantic error at ``rules.3.when.item.hs.0`` becomes ``rules.yaml:42: ...``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

MAX_FILE_BYTES = 5_000_000

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


class ConfigError(Exception):
    """One or more problems in configuration files; str() lists them all, one per line."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass
class Document:
    """Parsed YAML plus the line of each path into it."""

    file: str
    data: Any
    lines: dict[tuple[str | int, ...], int] = field(default_factory=dict)

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        path = tuple(loc)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), None)

    def validate(self, model: type[M], prefix: tuple[str | int, ...] = ()) -> M:
        try:
            return model.model_validate(self.data if not prefix else _get(self.data, prefix))
        except ValidationError as error:
            raise ConfigError(self.problems(error, prefix)) from None

    def problems(self, error: ValidationError, prefix: tuple[str | int, ...] = ()) -> list[Problem]:
        found = []
        for item in error.errors():
            loc = prefix + tuple(_strip_alias(p) for p in item["loc"])
            # Union and tagged errors put model names in loc: keep the path readable.
            loc = tuple(p for p in loc if not (isinstance(p, str) and p[:1].isupper()))
            message = item["msg"].removeprefix("Value error, ")
            if item["type"] == "extra_forbidden":
                message = f"unknown key {loc[-1]!r}" if loc else "unknown key"
            elif item["type"] == "string_type" and isinstance(item.get("input"), bool):
                message += " (YAML reads yes, no, on and off as true/false: quote the value)"
            elif item["type"] == "missing":
                message = f"{loc[-1]!r} is required" if loc else "a required key is missing"
            where = ".".join(str(p) for p in loc)
            found.append(Problem(self.file, self.line_of(loc), f"{where}: {message}" if where else message))
        return found


def _strip_alias(part: str | int) -> str | int:
    return part.rstrip("_") if isinstance(part, str) else part


def _get(data: Any, path: tuple[str | int, ...]) -> Any:
    for part in path:
        data = data[part]
    return data


class _LineLoader(yaml.SafeLoader):
    pass


def _record(loader: _LineLoader, node: yaml.Node, path: tuple[str | int, ...]) -> None:
    lines: dict[tuple[str | int, ...], int] = loader.lines  # type: ignore[attr-defined]
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[(*path, key)] = key_node.start_mark.line + 1
            _record(loader, value_node, (*path, key))
    elif isinstance(node, yaml.SequenceNode):
        for index, child in enumerate(node.value):
            lines[(*path, index)] = child.start_mark.line + 1
            _record(loader, child, (*path, index))


def _no_duplicate_keys(loader: _LineLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"key {key!r} appears twice (first on line {seen[key]})",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicate_keys)


def parse(text: str, file: str) -> Document:
    try:
        # The reader checks every character as it is built: a control character raises here.
        loader = _LineLoader(text)
    except yaml.YAMLError as error:
        raise ConfigError([Problem(file, None, f"not valid YAML: {error}")]) from None
    loader.lines = {}  # type: ignore[attr-defined]
    try:
        node = loader.get_single_node()
        if node is None:
            return Document(file, None)
        _record(loader, node, ())
        data = loader.construct_document(node)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(error, "problem", None) or str(error)
        context = getattr(error, "context", None)
        message = f"not valid YAML: {problem}" + (f" ({context})" if context else "")
        raise ConfigError([Problem(file, line, message)]) from None
    except RecursionError:  # [[[[...]]]] thousands deep: refused, not a crash
        raise ConfigError([Problem(file, None, "not valid YAML here: nested too deeply")]) from None
    finally:
        loader.dispose()
    return Document(file, data, loader.lines)  # type: ignore[attr-defined]


def load(path: Path) -> Document:
    file = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ConfigError([Problem(file, None, f"{size} bytes, over the limit of {MAX_FILE_BYTES}")])
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError([Problem(file, None, "no such file")]) from None
    except OSError as error:
        raise ConfigError([Problem(file, None, f"cannot be read: {error.strerror}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError([Problem(file, None, f"not UTF-8 text (byte {error.start})")]) from None
    if "\x00" in text:
        raise ConfigError([Problem(file, None, "binary content (NUL byte), not a YAML file")])
    return parse(text, file)
