"""The schema check for plain data from outside: run-file headers, remembered settings, options.

A dataclass is the schema: its field annotations give the types (``int``, ``float``, ``str``, ``bool``
and unions such as ``int | None``) and a :class:`Range` in a field's metadata gives the allowed values.
JSON is parsed with a size and nesting guard. Every failure is one user-facing line raised as the
caller's :class:`~cnnviz.errors.CnnvizError` subclass.

The rules: an ``int`` field takes integers only (``true`` is not an integer here); a ``float`` field
takes integers or floats that are finite; a ``str`` field takes text of at most :data:`MAX_TEXT`
characters; ``None`` only where the annotation says ``| None``.

(A library such as pydantic could check the types, but cnnviz's configs are plain frozen dataclasses,
the rules are these few, and its messages would need rewriting into one line for the user; it would
also be a new dependency of the engine.)
"""
from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass
from typing import Any

from cnnviz import limits
from cnnviz.errors import CnnvizError

MAX_TEXT = 4096  # characters of any text value (a folder path is the longest real one)

_NAMES = {int: "an integer", float: "a finite number", str: "text", bool: "true or false", type(None): "null"}


@dataclass(frozen=True)
class Range:
    """The allowed values of a number: ``low``..``high``, each end included unless marked open."""

    low: float
    high: float
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: Any) -> bool:
        try:
            above = value > self.low if self.low_open else value >= self.low
            below = value < self.high if self.high_open else value <= self.high
        except TypeError:
            return False
        return bool(above and below)

    def text(self) -> str:
        """The range in interval notation, e.g. ``[1, 10,000]`` or ``(0, 1)``."""
        return f"{'(' if self.low_open else '['}{_num(self.low)}, {_num(self.high)}{')' if self.high_open else ']'}"

    def problem(self, what: str, value: Any) -> str | None:
        """A message saying how ``value`` misses the range, or None when it is inside."""
        if value in self:
            return None
        if isinstance(value, float) and math.isnan(value):
            return f"{what} must be a number in {self.text()}, got nan"
        if value <= self.low if self.low_open else value < self.low:
            if self.low_open:
                bound = "positive" if self.low == 0 else f"greater than {_num(self.low)}"
            else:
                bound = f"at least {_num(self.low)}"
        else:
            bound = f"less than {_num(self.high)}" if self.high_open else f"at most {_num(self.high)}"
        return f"{what} must be {bound}, got {_num(value)}"

    def check(self, what: str, value: Any, error: type[CnnvizError]) -> None:
        """Raise ``error`` with :meth:`problem`'s message if ``value`` is outside the range."""
        problem = self.problem(what, value)
        if problem:
            raise error(problem)


def ranged(default: Any, low: float, high: float, *, low_open: bool = False, high_open: bool = False,
           label: str = "") -> Any:
    """A dataclass field with a default and a :class:`Range` (``label`` names it in messages)."""
    return dataclasses.field(default=default, metadata={
        "range": Range(low, high, low_open, high_open), "label": label})


def field_range(kind: type, name: str) -> Range:
    """The :class:`Range` declared on field ``name`` of dataclass ``kind``."""
    return next(f for f in dataclasses.fields(kind) if f.name == name).metadata["range"]


def check_ranges(obj: Any, error: type[CnnvizError]) -> None:
    """Check every field of dataclass instance ``obj`` that declares a :class:`Range` (None passes)."""
    for f in dataclasses.fields(obj):
        rng = f.metadata.get("range")
        value = getattr(obj, f.name)
        if rng is not None and value is not None:
            rng.check(f.metadata.get("label") or f.name.replace("_", " "), value, error)


def check_fields(kind: type, values: Any, error: type[CnnvizError], where: str, *,
                 finite: bool = True) -> dict[str, Any]:
    """Check the dict ``values`` against dataclass ``kind``'s fields; the keyword arguments to build it.

    Unknown and missing (no default) keys are errors; each value must match its field's annotation.
    Integers given for a float field come back as floats. ``finite=False`` lets floats be NaN or
    infinite (measured metrics may be).

    Raises
    ------
    error
        Naming ``where`` and the field, e.g. ``train: epochs must be an integer, got '5'``.
    """
    if not isinstance(values, dict):
        raise error(f"{where} must be a JSON object, got {describe(values)}")
    fields = {f.name: f for f in dataclasses.fields(kind)}
    unknown = sorted(str(k)[:40] for k in values if k not in fields)
    if unknown:
        raise error(f"{where}: unknown setting(s): {', '.join(unknown[:10])}")
    missing = [name for name, f in fields.items() if name not in values
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise error(f"{where}: missing {', '.join(missing)}")
    hints = _hints(kind)
    return {name: check_type(value, hints[name], f"{where}: {name}", error, finite=finite)
            for name, value in values.items()}


def check_instance(obj: Any, error: type[CnnvizError], where: str) -> None:
    """Check that every field value of dataclass instance ``obj`` matches its annotation."""
    hints = _hints(type(obj))
    for f in dataclasses.fields(obj):
        check_type(getattr(obj, f.name), hints[f.name], f"{where}: {f.name}", error)


def check_type(value: Any, annotation: Any, what: str, error: type[CnnvizError], *, finite: bool = True) -> Any:
    """``value`` if it matches ``annotation`` (a float for an integer given to a float); else ``error``."""
    options = typing.get_args(annotation) if _is_union(annotation) else (annotation,)
    for option in options:
        ok, converted = _accepts(option, value, finite)
        if ok:
            return converted
    wanted = " or ".join(_NAMES.get(o, getattr(o, "__name__", str(o))) for o in options)
    if float in options and not finite:
        wanted = wanted.replace("a finite number", "a number")
    raise error(f"{what} must be {wanted}, got {describe(value)}")


def check_text_list(values: Any, what: str, error: type[CnnvizError], count: int | None = None,
                    max_length: int = limits.MAX_CLASS_NAME_LENGTH) -> tuple[str, ...]:
    """A list of short strings (e.g. class names), optionally exactly ``count`` of them."""
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise error(f"{what} must be a list of text, got {describe(values)}")
    if count is not None and len(values) != count:
        raise error(f"{what}: {len(values):,} given, but the model has {count} classes")
    for v in values:
        if len(v) > max_length:
            raise error(f"{what}: {v[:20]!r}... is longer than {max_length} characters")
    return tuple(values)


def parse_json(text: str | bytes, what: str, error: type[CnnvizError],
               max_bytes: int = limits.MAX_CHECKPOINT_HEADER_BYTES) -> Any:
    """``json.loads`` with a size cap and a nesting cap (:data:`cnnviz.limits.MAX_JSON_DEPTH`).

    Raises ``error`` for text that is too long, not JSON, nested too deeply, or holds an integer of
    more digits than Python converts.
    """
    if not isinstance(text, (str, bytes, bytearray)):
        raise error(f"{what} must be JSON text, got {describe(text)}")
    if len(text) > max_bytes:
        raise error(f"{what} is {len(text):,} characters long; at most {max_bytes:,} are read")
    try:
        value = json.loads(text)
    except RecursionError:  # the C parser stops at the interpreter's recursion limit, cleanly
        raise error(f"{what} is nested more than {limits.MAX_JSON_DEPTH} levels deep") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise error(f"{what} is not valid JSON ({str(exc)[:200]})") from None
    if _depth_exceeds(value, limits.MAX_JSON_DEPTH):
        raise error(f"{what} is nested more than {limits.MAX_JSON_DEPTH} levels deep")
    return value


def describe(value: Any) -> str:
    """A short description of ``value`` for a message: its repr, cut short, and its kind for containers."""
    if isinstance(value, (dict, list, tuple)):
        items = value.values() if isinstance(value, dict) else value
        flat = len(value) <= 8 and all(_plain(v) for v in items)
        if flat and len(repr(value)) <= 60:  # small and flat: repr cannot recurse or run long
            return repr(value)
        return f"an object with {len(value):,} keys" if isinstance(value, dict) else f"a list of {len(value):,} items"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**30:
        # (str() of an int over 4,300 digits raises; the bit length gives the digit count to within one)
        return f"an integer of about {int(abs(value).bit_length() * 0.30103) + 1:,} digits"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _plain(value: Any) -> bool:
    """A scalar whose repr is cheap and safe (no huge integer, no container)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return abs(value) < 10**30
    return isinstance(value, (str, float, bool, type(None)))


def _accepts(option: Any, value: Any, finite: bool) -> tuple[bool, Any]:
    if option is type(None):
        return value is None, None
    if option is bool:
        return isinstance(value, bool), value
    if option is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if option is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False, None
        try:
            converted = float(value)
        except OverflowError:  # an integer beyond float's range
            return False, None
        return (math.isfinite(converted) or not finite), converted
    if option is str:
        return isinstance(value, str) and len(value) <= MAX_TEXT, value
    raise TypeError(f"validation: unsupported annotation {option!r}")  # a programming error, not the user's


def _is_union(annotation: Any) -> bool:
    return isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(kind: type) -> dict[str, Any]:
    if kind not in _HINTS:
        _HINTS[kind] = typing.get_type_hints(kind)
    return _HINTS[kind]


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether ``value`` nests lists/dicts more than ``limit`` deep (iterative: no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _num(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return describe(value)
    if isinstance(value, int):
        return f"{value:,}" if abs(value) < 10**30 else describe(value)
    if value.is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return repr(value)  # shortest exact form: 1e-320 stays 1e-320
