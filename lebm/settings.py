"""Typed settings: dataclasses whose fields state their constraints, nested sections, aliases.

Every config object of the library (a model's, a method's, a chain's, the run's sections) is
a dataclass whose field ``metadata`` holds its constraints::

    step_size: float = field(default=0.1, metadata={"gt": 0, "help": "Langevin step s"})

(``min``/``gt``/``max``/``lt``/``choices``, ``help``, and ``internal`` for values set from the
data rather than by the user). A field whose type is itself such a dataclass is a nested
section, addressed with dots (``prior_chain.step_size``). A dataclass may declare
``ALIASES = {"old_key": ("new.path", ...)}``: an old flat key is accepted wherever a key is
(presets, ``--set``, saved ``config.json``) and sets every path it names, so configs written
before a key moved keep loading.

This module imports nothing from the rest of ``lebm`` except its errors.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import types
import typing
from collections.abc import Iterator
from typing import Any, Union

from lebm.errors import ConfigError


def is_section(hint: Any) -> bool:
    """Whether a field type is a nested settings dataclass."""
    return isinstance(hint, type) and dataclasses.is_dataclass(hint)


def _hints(obj_or_cls: Any) -> dict[str, Any]:
    cls = obj_or_cls if isinstance(obj_or_cls, type) else type(obj_or_cls)
    return _class_hints(cls)


@functools.cache
def _class_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def leaf_paths(obj: Any, prefix: str = "") -> Iterator[tuple[str, Any, dataclasses.Field]]:
    """``(dotted path, owning object, field)`` for every non-section field, depth first."""
    hints = _hints(obj)
    for f in dataclasses.fields(obj):
        if is_section(hints[f.name]):
            yield from leaf_paths(getattr(obj, f.name), f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", obj, f


def aliases(obj: Any) -> dict[str, tuple[str, ...]]:
    """The old-key aliases a settings object accepts (its own and its sections', dotted)."""
    out = dict(getattr(type(obj), "ALIASES", {}))
    hints = _hints(obj)
    for f in dataclasses.fields(obj):
        if is_section(hints[f.name]):
            for old, new in aliases(getattr(obj, f.name)).items():
                out[f"{f.name}.{old}"] = tuple(f"{f.name}.{n}" for n in new)
    return out


def resolve(obj: Any, path: str) -> tuple[str, ...]:
    """The canonical leaf path(s) that ``path`` (a leaf path or an alias) names; ``()`` if
    none."""
    if path in {p for p, _, _ in leaf_paths(obj)}:
        return (path,)
    return aliases(obj).get(path, ())


def suggest(candidates: list[str], target: str, renamed: dict[str, str] | None = None) -> str:
    """A ``did you mean ...?`` hint for a mistyped key; an old key in ``renamed`` is shown
    with the key it now stands for."""
    close = [c for c in candidates if c.endswith("." + target)][:3]  # the same key elsewhere
    if not close:
        close = difflib.get_close_matches(target, candidates, n=3, cutoff=0.5)
    renamed = renamed or {}
    shown = [f"{c} (= {renamed[c]})" if c in renamed else c for c in close]
    return f"did you mean {', '.join(shown)}?" if shown else "see `lebm presets --keys`"


def assign(obj: Any, path: str, value: Any, *, from_text: bool, label: str = "") -> None:
    """Set the leaf (or alias) ``path`` of ``obj``, parsing ``value`` if ``from_text`` and
    type-checking it otherwise. ``label`` prefixes the key in error messages."""
    targets = resolve(obj, path)
    if not targets:
        key = f"{label}{path}"
        leaves = [f"{label}{p}" for p, _, f in leaf_paths(obj) if not f.metadata.get("internal")]
        old = {f"{label}{k}": ", ".join(f"{label}{n}" for n in new)
               for k, new in aliases(obj).items()}  # old keys are accepted too
        raise ConfigError(f"unknown config key {key!r}; {suggest(leaves + list(old), key, old)}")
    for target in targets:
        *parents, name = target.split(".")
        owner = obj
        for part in parents:
            owner = getattr(owner, part)
        f = {g.name: g for g in dataclasses.fields(owner)}[name]
        key = f"{label}{target}"
        if from_text and f.metadata.get("internal"):
            raise ConfigError(f"{key} is set from the data and cannot be overridden")
        hint = _hints(owner)[name]
        setattr(owner, name, parse(value, hint, key) if from_text else coerce(value, hint, key))


def from_plain(cls: type, values: dict[str, Any], label: str = "") -> Any:
    """Build ``cls`` from plain (JSON) values: nested dicts for sections (each filled into the
    section's default, so a partial dict keeps the other defaults), old keys accepted."""
    obj = cls()
    fill(obj, values, label)
    return obj


def fill(obj: Any, values: dict[str, Any], label: str = "") -> None:
    """Set the plain ``values`` on the settings object ``obj`` in place (see ``from_plain``).

    Sections are filled first, then leaves and old flat aliases, so an alias found in an old
    file overrides the section default it maps to."""
    if not isinstance(values, dict):
        raise ConfigError(f"{label.rstrip('.') or type(obj).__name__}: expected a mapping, "
                          f"got {values!r}")
    hints = _hints(obj)
    sections = {f.name for f in dataclasses.fields(obj) if is_section(hints[f.name])}
    for key, value in values.items():
        if key in sections:
            fill(getattr(obj, key), value, f"{label}{key}.")
    for key, value in values.items():
        if key not in sections:
            assign(obj, key, value, from_text=False, label=label)


def to_plain(obj: Any) -> dict[str, Any]:
    """Plain nested dict of a settings object (tuples become lists in JSON)."""
    return dataclasses.asdict(obj)


def check(obj: Any, label: str = "") -> None:
    """Check every leaf's constraints, then each section's cross-field ``rules(label)`` (a
    method a settings class may define); raise ``ConfigError`` naming the first bad key."""
    for path, owner, f in leaf_paths(obj):
        check_value(f"{label}{path}", getattr(owner, f.name), f.metadata)
    _check_rules(obj, label)


def _check_rules(obj: Any, label: str) -> None:
    hints = _hints(obj)
    for f in dataclasses.fields(obj):
        if is_section(hints[f.name]):
            _check_rules(getattr(obj, f.name), f"{label}{f.name}.")
    rules = getattr(obj, "rules", None)
    if callable(rules):
        rules(label)


def describe(obj: Any, label: str = "") -> list[str]:
    """``key = value  [constraints]  # help`` lines for every user-settable leaf."""
    lines = []
    for path, owner, f in leaf_paths(obj):
        if f.metadata.get("internal"):
            continue
        meta = {k: v for k, v in f.metadata.items() if k != "help"}
        note = f.metadata.get("help", "")
        cons = " ".join(f"{k}={v}" for k, v in meta.items())
        lines.append(f"{label}{path} = {getattr(owner, f.name)!r}"
                     + (f"  [{cons}]" if cons else "") + (f"  # {note}" if note else ""))
    return lines


# ---------------------------------------------------------------------------- values


def _split_optional(hint: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0], len(args) < len(typing.get_args(hint))
    return hint, False


def parse(text: Any, hint: Any, key: str) -> Any:
    """Parse command-line text to the field type ``hint``."""
    if not isinstance(text, str):
        return coerce(text, hint, key)
    base, optional = _split_optional(hint)
    if optional and text.lower() in ("none", "null", ""):
        return None
    if typing.get_origin(base) is tuple:
        (elem, _) = typing.get_args(base)
        parts = [p.strip() for p in text.strip("[]() ").split(",") if p.strip()]
        return tuple(parse(p, elem, key) for p in parts)
    if base is bool:
        low = text.lower()
        if low in ("true", "1", "yes", "on"):
            return True
        if low in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"{key}: expected true or false, got {text!r}")
    if base is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{key}: expected an integer, got {text!r}") from None
    if base is float:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{key}: expected a number, got {text!r}") from None
    return text


def coerce(value: Any, hint: Any, key: str) -> Any:
    """Check a Python value (from a preset or config.json) against the field type."""
    base, optional = _split_optional(hint)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{key}: may not be none")
    if typing.get_origin(base) is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (elem, _) = typing.get_args(base)
        return tuple(coerce(v, elem, key) for v in value)
    if base is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if base is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if base is str and not isinstance(value, str):
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    return value


def check_value(key: str, v: Any, meta: Any) -> None:
    """Check one value against its field's ``metadata`` constraints."""
    if isinstance(v, tuple):
        for item in v:
            check_value(key, item, meta)
        return
    if v is None or isinstance(v, bool):
        return
    if "choices" in meta and v not in meta["choices"]:
        raise ConfigError(f"{key}: must be one of {', '.join(map(str, meta['choices']))}, "
                          f"got {v!r}")
    if isinstance(v, (int, float)):
        if v != v or v in (float("inf"), float("-inf")):
            raise ConfigError(f"{key}: must be a finite number, got {v!r}")
        if "min" in meta and v < meta["min"]:
            raise ConfigError(f"{key}: must be >= {meta['min']}, got {v!r}")
        if "gt" in meta and v <= meta["gt"]:
            raise ConfigError(f"{key}: must be > {meta['gt']}, got {v!r}")
        if "max" in meta and v > meta["max"]:
            raise ConfigError(f"{key}: must be <= {meta['max']}, got {v!r}")
        if "lt" in meta and v >= meta["lt"]:
            raise ConfigError(f"{key}: must be < {meta['lt']}, got {v!r}")
