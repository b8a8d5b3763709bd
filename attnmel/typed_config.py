"""Dataclasses that check themselves, and the YAML and ``--set`` plumbing around them.

A field declared with ``setting(default, **rules)`` carries its constraints; :class:`Checked`
enforces them (and the field's type) whenever an instance is made, from YAML or in code, and
:meth:`Checked.from_mapping` adds the coercion of parsed YAML and the unknown-key errors. The
training config (:mod:`attnmel.config`) and the sweep spec sections (``orchestrator/sweep/spec.py``)
are built on it, so a bad value is one :class:`UserError` line naming the key.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import operator
import types
import typing
from dataclasses import field
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import yaml

from attnmel.errors import UserError

__all__ = ["Checked", "setting", "coerce", "check_keys", "as_mapping", "read_yaml", "parse_override", "set_nested"]

_RULES = ("choices", "min", "max", "above", "below", "multiple_of")


def setting(default: Any = dataclasses.MISSING, **rules: Any) -> Any:
    """A dataclass field with rules :class:`Checked` enforces: ``choices`` (a tuple), ``min``
    / ``max`` (inclusive bounds), ``above`` / ``below`` (exclusive), ``multiple_of``. On a
    tuple field they apply to each element; ``None`` passes them all."""
    unknown = sorted(set(rules) - set(_RULES))
    if unknown:
        raise TypeError(f"unknown rule {unknown[0]!r} (known: {', '.join(_RULES)})")
    return field(default=default, metadata=rules)


def _key(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _what(kind: str, key: str) -> str:
    return f"{kind} key '{key}'" if key else kind


def as_mapping(value: Any, key: str, kind: str = "config") -> dict[str, Any]:
    """``value`` if it is a mapping, ``{}`` for null (a YAML section left empty), else an error."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserError(f"{_what(kind, key)} must be a mapping, got {value!r}")
    return value


def check_keys(given: dict[str, Any], known: typing.Iterable[str], where: str, kind: str = "config") -> None:
    """Unknown keys are an error naming the first one and listing the known ones."""
    known = list(known)
    bad = sorted(set(given) - set(known))
    if bad:
        raise UserError(f"unknown {kind} key '{_key(where, bad[0])}' (known: {', '.join(known)})")


def _options(hint: Any) -> tuple[Any, ...]:
    """The alternatives of a union annotation (``int | None`` → (int, NoneType))."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return typing.get_args(hint)
    return (hint,)


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is Literal:
        return "one of " + ", ".join(map(str, typing.get_args(hint)))
    names = {type(None): "null", bool: "true or false", int: "an integer", float: "a number",
             str: "a non-empty string", tuple: "a list", dict: "a mapping"}  # fmt: skip
    return names.get(origin or hint, "a mapping" if _is_checked(hint) else getattr(hint, "__name__", str(hint)))


def _is_checked(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, Checked)


_NO = object()  # "the value is not of this type"


def _as(kind: str, key: str, value: Any, hint: Any, lenient: bool) -> Any:
    """``value`` as an instance of one (non-union) annotation, or ``_NO``.

    ``lenient`` is for parsed YAML: mappings become sections, a scalar a one-element list,
    and numeric strings numbers (YAML 1.1 reads ``1e-3``, without a dot, as a string).
    """
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if origin is Literal:
        return value if any(value == c and type(value) is type(c) for c in typing.get_args(hint)) else _NO
    if _is_checked(hint):
        if isinstance(value, hint):
            return value
        return hint.from_mapping(value, where=key) if lenient and isinstance(value, dict) else _NO
    if origin is tuple:
        if lenient and not isinstance(value, (list, tuple)):
            value = [value]
        if not isinstance(value, (list, tuple)):
            return _NO
        if lenient and not value:
            raise UserError(f"{_what(kind, key)} must not be empty")
        return tuple(coerce(kind, key, item, typing.get_args(hint)[0], lenient=lenient) for item in value)
    if isinstance(value, bool) != (hint is bool):  # true/false is neither a number nor a string
        return _NO
    if hint is float:
        if lenient and isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                return _NO
        if not isinstance(value, (int, float)):
            return _NO
        if not math.isfinite(value):
            raise UserError(f"{_what(kind, key)} must be a finite number, got {value!r}")
        return float(value)
    if hint is str and value == "":
        return _NO
    return value if isinstance(value, origin or hint) else _NO


def coerce(kind: str, key: str, value: Any, hint: Any, *, lenient: bool = True) -> Any:
    """``value`` converted to the type annotation ``hint``, or a :class:`UserError` naming ``key``.

    ``kind`` ("config" or "spec") starts the message: "config key 'optim.lr' must be …".
    """
    options = _options(hint)
    if value is None:
        if type(None) in options or Any in options:
            return None
        if lenient and (_is_checked(hint) or typing.get_origin(hint) is dict):
            value = {}  # a YAML section left empty (`runtime:` alone) means its defaults
        else:
            raise UserError(f"{_what(kind, key)} must not be null")
    for option in options:
        result = _as(kind, key, value, option, lenient)
        if result is not _NO:
            return result
    raise UserError(f"{_what(kind, key)} must be {' or '.join(map(_describe, options))}, got {value!r}")


def _check_rules(kind: str, key: str, value: Any, rules: typing.Mapping[str, Any]) -> None:
    if value is None or not rules:
        return
    if isinstance(value, tuple):
        for item in value:
            _check_rules(kind, key, item, rules)
        return
    what = _what(kind, key)
    if "choices" in rules and value not in rules["choices"]:
        raise UserError(f"{what} must be one of {', '.join(map(str, rules['choices']))}, got {value!r}")
    for rule, fails, sign in (("min", operator.lt, ">="), ("max", operator.gt, "<="),
                              ("above", operator.le, ">"), ("below", operator.ge, "<")):  # fmt: skip
        if rule in rules and fails(value, rules[rule]):
            raise UserError(f"{what} must be {sign} {rules[rule]}, got {value!r}")
    if "multiple_of" in rules and value % rules["multiple_of"]:
        raise UserError(f"{what} must be a multiple of {rules['multiple_of']}, got {value!r}")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)  # resolves the postponed (string) annotations


class Checked:
    """Mixin for frozen config dataclasses: every build checks each field's type and rules.

    ``KIND`` and ``SECTION`` name the key in messages ("config key 'data.crop_size' …").
    Subclasses put constraints between fields in :meth:`check`.
    """

    KIND: ClassVar[str] = "config"
    SECTION: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = self._field_value(f, getattr(self, f.name), self.SECTION, lenient=False)
            object.__setattr__(self, f.name, value)  # ints given for floats are kept as floats
        self.check()

    def check(self) -> None:
        """Constraints between fields; each field's own rules hold already."""

    def key(self, name: str) -> str:
        """The dotted key of field ``name`` (as messages show it)."""
        return _key(self.SECTION, name)

    @classmethod
    def _field_value(cls, f: dataclasses.Field, value: Any, where: str, *, lenient: bool) -> Any:
        key = _key(where, f.name)
        value = coerce(cls.KIND, key, value, _hints(cls)[f.name], lenient=lenient)
        _check_rules(cls.KIND, key, value, f.metadata)
        return value

    @classmethod
    def from_mapping(cls, raw: Any, where: str | None = None, **built: Any) -> Self:
        """Build from plain data (parsed YAML): unknown keys, types and rules are errors that
        name the key under ``where`` (default: the class's section). ``built`` are fields the
        caller has made itself; their keys in ``raw`` are not read."""
        where = cls.SECTION if where is None else where
        raw = as_mapping(raw, where, cls.KIND)
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        check_keys(raw, fields, where, cls.KIND)
        values = {
            name: cls._field_value(fields[name], value, where, lenient=True)
            for name, value in raw.items()
            if name not in built
        }
        for name, f in fields.items():
            if name not in values and name not in built and f.default is f.default_factory is dataclasses.MISSING:
                raise UserError(f"{_what(cls.KIND, _key(where, name))} is required")
        return cls(**values, **built)



def read_yaml(path: str | Path, what: str) -> Any:
    """The data of a YAML file (``safe_load``); a missing file or a syntax error is one line
    that names the file and, for syntax errors, the line and column."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} not found: {path}")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        context = ""
        if exc.context and exc.context_mark and exc.context_mark is not mark:
            context = f" ({exc.context} at line {exc.context_mark.line + 1}, column {exc.context_mark.column + 1})"
        problem = exc.problem or exc.context or type(exc).__name__
        raise UserError(f"{what} {path} is not valid YAML: {where}{problem}{context}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{what} {path} is not valid YAML: {str(exc).strip().splitlines()[0]}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {what} {path}: {exc}") from None


def parse_override(item: str) -> tuple[list[str], Any]:
    """Split ``a.b=value`` into (["a", "b"], value), the value parsed as YAML scalar."""
    if "=" not in item:
        raise UserError(f"override '{item}' must look like section.key=value")
    key, text = item.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise UserError(f"override '{item}' must look like section.key=value")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        value = text
    return parts, value


def set_nested(raw: dict[str, Any], parts: list[str], value: Any) -> None:
    """Set ``raw[parts[0]][parts[1]]... = value``, creating mappings on the way."""
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise UserError(f"cannot set '{'.'.join(parts)}': '{part}' is not a section")
        node = child
    node[parts[-1]] = value
