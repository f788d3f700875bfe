"""YAML files that report errors by file and line.

``load(path)`` parses safely and remembers the line of every mapping key and sequence item, so
a pydantic error at ``rules.3.when.item.hs.0`` becomes ``rules.yaml:42: rules[3].when.item.hs[0]:``
and a sentence a compliance analyst understands (:func:`explain`): ``'urgent' is not one of info,
low, medium, high, critical``, ``unknown key 'destnation_country'; did you mean
'destination_country'?``, ``expects a list, not a single value: write [KP]``.
"""

from __future__ import annotations

import difflib
import re
import types
from collections import abc
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

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
            raise ConfigError(self.problems(error, prefix, model)) from None

    def problem(self, loc: Sequence[str | int], message: str) -> Problem:
        """A problem at ``loc``: its line, and the field named before the sentence."""
        where = path(loc)
        return Problem(self.file, self.line_of(loc), f"{where}: {message}" if where else message)

    def problems(
        self,
        error: ValidationError,
        prefix: tuple[str | int, ...] = (),
        model: type[BaseModel] | None = None,
    ) -> list[Problem]:
        """Each of pydantic's errors as a sentence an analyst understands, at its file and line."""
        found = []
        for item in error.errors():
            loc = list(prefix)
            for part in map(_strip_alias, item["loc"]):
                # Union and tagged errors put model names in loc (``ItemCondition``,
                # ``function-after[...]``): dropped, unless the file has such a key there.
                named = isinstance(part, str) and (part[:1].isupper() or "[" in part)
                if not named or (*loc, part) in self.lines:
                    loc.append(part)
            own = tuple(loc[len(prefix) :])
            found.append(self.problem(loc, explain(item, own, model)))
        return list(dict.fromkeys(found))


def path(loc: Sequence[str | int]) -> str:
    """``("rules", 3, "when", "destination_country", 0)`` -> ``rules[3].when.destination_country[0]``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def did_you_mean(value: str, choices: Iterable[str], n: int = 1, cutoff: float = 0.6) -> str:
    """``"; did you mean 'x'?"`` for the choices closest to ``value`` (case blind), or ``""``."""
    folded: dict[str, str] = {}
    for choice in choices:
        folded.setdefault(choice.casefold(), choice)
    close = difflib.get_close_matches(value.casefold(), list(folded), n=n, cutoff=cutoff)
    return f"; did you mean {' or '.join(repr(folded[c]) for c in close)}?" if close else ""


def _kind(value: Any) -> str:
    """What a YAML value is, in words."""
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (yes/no)"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping of keys and values"
    return type(value).__name__


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# Patterns of the models, as the rule of their form that a person reads.
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(r"^\^\[A-Z\]\{3\}\$$"),
        "a currency's three-letter ISO 4217 code in capitals, such as USD or CNY",
    ),
    (re.compile(r"^\^\\d\{2,10\}\$$"), "an HS code of 2 to 10 digits"),
    (re.compile(r"^\^https\?://"), "a web address starting with http:// or https://"),
    (re.compile(r"^\^\\S\+\$$"), "text without spaces"),
]
_NAME_PATTERN = re.compile(r"^\^\[a-z0-9\]\[a-z0-9(?P<extra>[^\]]*)\](?:\{0,(?P<most>\d+)\}|\*)\$$")


def _pattern_rule(pattern: str) -> str:
    for known, sentence in _PATTERNS:
        if known.match(pattern):
            return sentence
    name = _NAME_PATTERN.match(pattern)
    if name:
        marks = [repr(m) for m in ("-", "_", ".") if m in name["extra"]]
        allowed = "lower-case letters and digits"
        if marks:
            allowed = ", ".join(["lower-case letters", "digits", *marks[:-1]]) + f" and {marks[-1]}"
        most = f", at most {int(name['most']) + 1} characters" if name["most"] else ""
        return f"{allowed}, starting with a letter or a digit{most}"
    return f"text matching the pattern {pattern}"


def _choices(expected: str) -> list[str]:
    """pydantic's ``"'a', 'b' or 'c'"`` -> ``["a", "b", "c"]``."""
    quoted = re.findall(r"'((?:[^'\\]|\\.)*)'", expected)
    return quoted or [part.strip() for part in re.split(r",| or ", expected) if part.strip()]


def _expected_keys(model: type[BaseModel] | None, loc: Sequence[str | int]) -> list[str]:
    """The keys a mapping at ``loc`` (inside ``model``) may have, when the models say."""
    if model is None:
        return []
    types: list[Any] = [model]
    for part in loc:
        types = [t for current in types for t in _step(current, part)]
        if not types:
            return []
    keys: dict[str, None] = {}
    for current in types:
        for alternative in _alternatives(current):
            if _is_model(alternative):
                for name, info in alternative.model_fields.items():
                    keys[info.alias or name] = None
    return list(keys)


def _is_model(annotation: Any) -> bool:
    return (
        get_origin(annotation) is None and isinstance(annotation, type) and issubclass(annotation, BaseModel)
    )


def _alternatives(annotation: Any) -> list[Any]:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _alternatives(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return [a for arg in get_args(annotation) for a in _alternatives(arg) if a is not type(None)]
    return [annotation]


def _step(annotation: Any, part: str | int) -> list[Any]:
    found = []
    for alternative in _alternatives(annotation):
        origin = get_origin(alternative)
        if _is_model(alternative) and isinstance(part, str):
            for name, info in alternative.model_fields.items():
                if part in (name, info.alias, name.rstrip("_")):
                    found.append(info.annotation)
        elif origin in (list, tuple, set, frozenset, abc.Sequence) and isinstance(part, int):
            found.append(get_args(alternative)[0] if get_args(alternative) else Any)
        elif origin in (dict, abc.Mapping) and len(get_args(alternative)) == 2:
            found.append(get_args(alternative)[1])
    return found


def explain(item: Mapping[str, Any], loc: Sequence[str | int], model: type[BaseModel] | None = None) -> str:
    """One of pydantic's errors as a plain sentence (the field is named by the caller)."""
    kind = item["type"]
    value = item.get("input")
    ctx = item.get("ctx") or {}
    message = str(item["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind == "extra_forbidden":
        key = str(loc[-1]) if loc else "?"
        allowed = _expected_keys(model, loc[:-1])
        hint = did_you_mean(key, allowed)
        if hint or not allowed:
            return f"unknown key {key!r}{hint}"
        return f"unknown key {key!r}; the keys here are {', '.join(allowed)}"
    if kind == "missing":
        return f"{loc[-1]!r} is required" if loc else "a required key is missing"
    if kind in ("literal_error", "enum"):
        choices = _choices(str(ctx.get("expected", "")))
        hint = did_you_mean(str(value), choices) if isinstance(value, str) else ""
        return f"{_show(value)} is not one of {', '.join(choices)}{hint}"
    if kind == "string_pattern_mismatch":
        return f"{_show(value)} has the wrong form: write {_pattern_rule(str(ctx.get('pattern', '')))}"
    if kind == "string_type":
        sentence = f"expects text, not {_kind(value)}"
        if isinstance(value, bool):
            sentence += " (YAML reads yes, no, on and off as true/false: quote the value)"
        elif isinstance(value, int | float):
            sentence += f" (quote it if it is meant as text: '{value}')"
        elif isinstance(value, list | dict):
            sentence += ": write one value here"
        return sentence
    if kind == "list_type":
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return f"expects a list, not a single value: write [{value}]"
        return f"expects a list such as [a, b], not {_kind(value)}"
    if kind in ("dict_type", "model_type", "model_attributes_type", "mapping_type"):
        return f"expects keys and values (a mapping such as {{key: value}}), not {_kind(value)}"
    if kind in ("bool_type", "bool_parsing"):
        return f"expects true or false, not {_kind(value)}"
    if kind in ("int_type", "int_parsing", "int_from_float", "int_parsing_size"):
        return f"expects a whole number, not {_kind(value)}"
    if kind in ("float_type", "float_parsing", "decimal_type", "decimal_parsing"):
        return f"expects a number, not {_kind(value)}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        bound = {
            "greater_than": ("above", "gt"),
            "greater_than_equal": ("at least", "ge"),
            "less_than": ("below", "lt"),
            "less_than_equal": ("at most", "le"),
        }[kind]
        limit = ctx.get(bound[1])
        if isinstance(limit, float) and limit.is_integer():
            limit = int(limit)
        return f"{_show(value)} is out of range: it must be {bound[0]} {limit}"
    if kind == "too_short":
        least = ctx.get("min_length", 1)
        if not ctx.get("actual_length"):
            return (
                "is empty: give at least one value"
                if least == 1
                else f"is empty: give at least {least} values"
            )
        return f"has {ctx.get('actual_length')} values; at least {least} are needed"
    if kind == "too_long":
        return f"has {ctx.get('actual_length')} values; at most {ctx.get('max_length')} are allowed"
    if kind == "string_too_short":
        least = ctx.get("min_length", 1)
        return "must not be empty" if least == 1 else f"is too short: at least {least} characters"
    if kind == "string_too_long":
        return f"is too long: at most {ctx.get('max_length')} characters"
    if kind in ("date_type", "date_parsing", "date_from_datetime_parsing", "date_from_datetime_inexact"):
        return f"expects a date written as 2026-12-31, not {_kind(value)}"
    if kind.startswith(("datetime_", "timezone_")):
        return f"expects a date and time written as 2026-03-06T09:00:00Z, not {_kind(value)}"
    if kind in ("url_parsing", "url_scheme", "url_type"):
        return (
            f"{_show(value)} is not a web address this can use ({message.removeprefix('Input should be ')})"
        )
    return message


def _strip_alias(part: str | int) -> str | int:
    return part.rstrip("_") if isinstance(part, str) else part


def _get(data: Any, path: tuple[str | int, ...]) -> Any:
    for part in path:
        data = data[part]
    return data


# libyaml's parser where PyYAML has it (about eight times faster on the catalog, the same nodes
# with the same line marks); the pure-Python one elsewhere.
class _LineLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    pass


def _record(loader: _LineLoader, node: yaml.Node, path: tuple[str | int, ...]) -> None:
    lines: dict[tuple[str | int, ...], int] = loader.lines
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
    loader.lines = {}
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
    return Document(file, data, loader.lines)


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
