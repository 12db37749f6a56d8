"""Typed, validated configuration: dataclasses <- YAML files <- ``--set key=value`` overrides.

Each stage declares its own dataclass (``PreprocessConfig`` in :mod:`mri_harmonic.data.config`,
``TrainConfig`` in :mod:`mri_harmonic.training.config`, ...). This module is the shared machinery:

- :func:`from_dict` builds a dataclass from plain data and rejects unknown keys and wrong types with a one-line
  :class:`~mri_harmonic.errors.UserInputError` naming the dotted key and the file it came from;
- :func:`load_config` reads a YAML file, applies ``key.sub=value`` overrides (values parsed as YAML), validates;
- :func:`to_dict`, :func:`dump_config` and :func:`config_hash` write the *resolved* config next to every output.

Defaults live in the dataclasses only (one source of truth); YAML files hold just what differs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import types
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from mri_harmonic.errors import UserInputError
from mri_harmonic.utils.io import atomic_write_text

T = TypeVar("T")


def config_error(key: str, source: str, problem: str) -> UserInputError:
    """A uniform message: ``<source>: key '<key>' <problem>``."""
    return UserInputError(f"{source}: key '{key}' {problem}")


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin in (list, tuple):
        args = [a for a in get_args(tp) if a is not Ellipsis]
        return f"a list of {_type_name(args[0])}" if args else "a list"
    if origin is dict:
        return "a mapping"
    if tp is type(None):
        return "null"
    return {int: "an integer", float: "a number", str: "a string", bool: "true/false"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise config_error(key, source, f"must be a mapping of {tp.__name__} fields, got {value!r}")
        return from_dict(tp, value, source=source, prefix=key)
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise config_error(key, source, f"must be {_type_name(tp)}, got {value!r}")
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key, source)
            except UserInputError as exc:
                errors.append(str(exc))
        raise config_error(key, source, f"must be {_type_name(tp)}, got {value!r}")
    if origin in (list, tuple):
        if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
            raise config_error(key, source, f"must be {_type_name(tp)}, got {value!r}")
        args = get_args(tp)
        items = list(value)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(items) != len(args):
                raise config_error(key, source, f"must have {len(args)} items, got {value!r}")
            out = [_coerce(v, a, f"{key}[{i}]", source) for i, (v, a) in enumerate(zip(items, args))]
        else:
            inner = args[0] if args else Any
            out = [_coerce(v, inner, f"{key}[{i}]", source) for i, v in enumerate(items)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, Mapping):
            raise config_error(key, source, f"must be a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise config_error(key, source, f"must be true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise config_error(key, source, f"must be an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise config_error(key, source, f"must be a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise config_error(key, source, f"must be a string, got {value!r}")
    if tp is Path:
        if isinstance(value, (str, os.PathLike)):
            return Path(value)
        raise config_error(key, source, f"must be a path, got {value!r}")
    return value


def from_dict(cls: type[T], data: Mapping[str, Any] | None, *, source: str = "config", prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong types raise :class:`UserInputError`."""
    data = dict(data or {})
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        valid = ", ".join(sorted(fields))
        raise config_error(key, source, f"is not a known setting; valid keys{' under ' + repr(prefix) if prefix else ''}: {valid}")
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        kwargs[name] = _coerce(value, hints[name], key, source)
    try:
        return cls(**kwargs)
    except UserInputError as exc:
        msg = str(exc)
        raise UserInputError(msg if msg.startswith(source) else f"{source}: {msg}") from None


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain, YAML/JSON-safe dict of a (nested) config dataclass."""

    def convert(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: convert(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [convert(x) for x in v]
        if isinstance(v, dict):
            return {k: convert(x) for k, x in v.items()}
        if isinstance(v, Path):
            return str(v)
        return v

    return convert(cfg)


def config_hash(cfg: Any) -> str:
    """Short stable hash of the resolved config (12 hex digits)."""
    blob = json.dumps(to_dict(cfg), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def parse_overrides(overrides: Iterable[str] | None) -> dict[str, Any]:
    """``["optim.lr=1e-4", "model.ngf=32"]`` -> nested dict; values are parsed as YAML scalars/lists."""
    nested: dict[str, Any] = {}
    for item in overrides or []:
        if "=" not in item:
            raise UserInputError(f"`overrides` {item!r}: expected key=value, e.g. 'optim.lr=0.0002'")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key:
            raise UserInputError(f"`overrides` {item!r}: empty key; expected key=value")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserInputError(f"`overrides` {item!r}: '{part}' is both a value and a section")
        node[parts[-1]] = value
    return nested


def deep_merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in update.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(dict(out[k]), v)
        else:
            out[k] = v
    return out


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"config file {path} not found; pass an existing YAML file (see configs/)")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" at line {line + 1}" if line is not None else ""
        raise UserInputError(f"config file {path} is not valid YAML{where}; fix the syntax") from None
    if not isinstance(data, dict):
        raise UserInputError(f"config file {path} must hold a mapping of keys at the top level")
    return data


def load_config(
    cls: type[T],
    path: str | os.PathLike | None = None,
    overrides: Iterable[str] | Mapping[str, Any] | None = None,
) -> T:
    """Defaults of ``cls`` <- YAML file ``path`` <- ``overrides`` (``key=value`` strings or a nested dict)."""
    data: dict[str, Any] = read_yaml(path) if path is not None else {}
    return from_layers(cls, data, str(path) if path is not None else "config", overrides)


def from_layers(cls: type[T], data: Mapping[str, Any], source: str,
                overrides: Iterable[str] | Mapping[str, Any] | None = None) -> T:
    """``cls`` from ``data`` (read from ``source``) with ``overrides`` merged on top. An error is blamed on where
    it comes from: ``data`` is checked alone first (errors name ``source``), so what fails only after the merge
    names ```overrides``` (``--set`` on the CLI)."""
    if not overrides:
        return from_dict(cls, data, source=source)
    upd = overrides if isinstance(overrides, Mapping) else parse_overrides(overrides)
    if data:
        from_dict(cls, data, source=source)
    return from_dict(cls, deep_merge(dict(data), upd), source="`overrides`")


def dump_config(cfg: Any, path: str | os.PathLike) -> Path:
    """Write the resolved config as YAML, atomically, with its hash in a header comment."""
    text = f"# resolved config, hash {config_hash(cfg)}\n" + yaml.safe_dump(to_dict(cfg), sort_keys=False)
    return atomic_write_text(path, text)


def require(cond: bool, key: str, problem: str) -> None:
    """For ``__post_init__`` checks: raise a :class:`UserInputError` naming ``key`` unless ``cond``."""
    if not cond:
        raise UserInputError(f"key '{key}' {problem}")
