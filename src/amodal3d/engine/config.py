"""Typed configs: YAML / JSON dicts <-> frozen dataclasses, with strict checking.

Every problem (unknown key, wrong type, value not allowed) is a :class:`ConfigError` naming the file
and the dotted key, e.g. ``configs/x.yaml: unknown key 'train.lr_max' (valid: batch_size, ...)``.
Supported field types: ``int``, ``float`` (ints accepted; NaN and infinities refused), ``bool``, ``str``,
``Literal[...]``, ``X | None``, ``tuple[X, ...]``, ``tuple[X, Y]``, ``list[X]``, ``dict[str, X]`` and
nested dataclasses. Ranges are checked by each dataclass's ``__post_init__`` with :func:`check_range`
(or by raising :class:`FieldError`), so that the message names the dotted key of the wrong value.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from amodal3d.errors import Amodal3dError
from amodal3d.io import atomic_write_bytes
from amodal3d.paths import check_regular_file

T = TypeVar("T")


class ConfigError(Amodal3dError):
    """A config file or dict that does not match its dataclass (unknown key, wrong type or value)."""


class FieldError(ValueError):
    """Raised by a dataclass's ``__post_init__`` for one field's value: :func:`from_dict` reports it as
    ``SOURCE: PREFIX.KEY: MESSAGE`` (e.g. ``x.yaml: train.lr: must be > 0, got -1.0``)."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key, self.message = key, message


def out_of_range(value: float, low: float | None = None, high: float | None = None, *, low_open: bool = False,
                 high_open: bool = False, show=str) -> str | None:
    """The allowed interval as a message reads it (``>= 1``, ``in [0, 1)``; bounds written by ``show``)
    when ``value`` lies outside ``[low, high]`` (``low_open`` / ``high_open`` exclude a bound), else None.
    Shared by :func:`check_range` and the argparse types of :mod:`amodal3d.commands.arguments`."""
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if not (too_low or too_high):
        return None
    if high is None:
        return f"{'>' if low_open else '>='} {show(low)}"
    if low is None:
        return f"{'<' if high_open else '<='} {show(high)}"
    return f"in {'(' if low_open else '['}{show(low)}, {show(high)}{')' if high_open else ']'}"


def check_range(owner: Any, name: str, low: float | None = None, high: float | None = None, *,
                low_open: bool = False, high_open: bool = False) -> None:
    """``FieldError`` unless ``owner.name`` (a number, a tuple of numbers or None) is finite and in
    ``[low, high]`` (``low_open`` / ``high_open`` exclude the bound). Used in ``__post_init__``."""
    value = getattr(owner, name)
    values = value if isinstance(value, (tuple, list)) else (value,)
    for index, item in enumerate(values):
        key = f"{name}[{index}]" if isinstance(value, (tuple, list)) else name
        if item is None:
            continue
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            raise FieldError(key, f"expected a number, got {item!r}")
        if not math.isfinite(item):
            raise FieldError(key, f"expected a finite number, got {item!r}")
        bounds = out_of_range(item, low, high, low_open=low_open, high_open=high_open,
                              show=lambda b: f"{b:g}" if isinstance(b, float) else str(b))
        if bounds:
            raise FieldError(key, f"must be {bounds}, got {item!r}")


def _show(value: Any) -> str:
    """A value as the message shows it: ``null`` for None (YAML's spelling), else its repr."""
    return "null" if value is None else repr(value)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, where: str, source: str) -> Any:
    """Check ``value`` against the type ``tp`` and convert it (lists -> tuples, dicts -> dataclasses)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _convert(value, option, where, source)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(f"{source}: {where}: {_show(value)} is not a {' or '.join(_type_name(a) for a in args)}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{source}: {where}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {where}: expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, source=source, prefix=f"{where}.")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: {where}: expected a list, got {value!r}")
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise ConfigError(f"{source}: {where}: expected {len(args)} values, got {len(value)}")
            return tuple(_convert(v, a, f"{where}[{i}]", source) for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        items = [_convert(v, item, f"{where}[{i}]", source) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {where}: expected a mapping, got {value!r}")
        item = args[1] if args else Any
        return {str(k): _convert(v, item, f"{where}.{k}", source) for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {where}: expected true or false, got {_show(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: {where}: expected an integer, got {_show(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{source}: {where}: expected a number, got {_show(value)}")
        if not math.isfinite(value):
            raise ConfigError(f"{source}: {where}: expected a finite number, got {_show(value)}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: {where}: expected a string, got {_show(value)}")
        return value
    raise TypeError(f"config field {where}: unsupported type {tp!r}")


def from_dict(cls: type[T], data: dict, *, source: str = "<config>", prefix: str = "") -> T:
    """Build the dataclass ``cls`` from a (nested) dict; missing keys keep their defaults.

    Raises :class:`ConfigError` naming ``source`` and the dotted key for unknown keys, missing
    required keys, wrong types, or a ``__post_init__`` that rejects a value (``ValueError``)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise ConfigError(f"{source}: unknown key {prefix + str(unknown[0])!r} "
                          f"(valid keys{' of ' + prefix.rstrip('.') if prefix else ''}: {', '.join(fields)})")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _convert(value, hints[name], prefix + name, source)
    missing = [n for n, f in fields.items() if n not in kwargs
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{source}: missing key {prefix + missing[0]!r}")
    return _build(cls, kwargs, source, prefix)


def _build(cls: type[T], kwargs: dict, source: str, prefix: str) -> T:
    """``cls(**kwargs)``; a ValueError of its ``__post_init__`` becomes a ConfigError naming the key."""
    try:
        return cls(**kwargs)
    except FieldError as error:
        raise ConfigError(f"{source}: {prefix}{error.key}: {error.message}") from None
    except ValueError as error:
        raise ConfigError(f"{source}: {prefix.rstrip('.') or cls.__name__}: {error}") from None


def replace_checked(obj: T, changes: dict, *, source: str = "command line", prefix: str = "") -> T:
    """``dataclasses.replace(obj, **changes)`` with every change checked like a config value (type,
    finiteness, the dataclass's ranges); ConfigError naming ``source`` and the dotted key."""
    hints = typing.get_type_hints(type(obj))
    fields = {f.name for f in dataclasses.fields(obj) if f.init}
    for name in changes:
        if name not in fields:
            raise ConfigError(f"{source}: unknown key {prefix + name!r}")
    converted = {name: _convert(value, hints[name], prefix + name, source) for name, value in changes.items()}
    kwargs = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.init}
    return _build(type(obj), {**kwargs, **converted}, source, prefix)


def to_dict(obj: Any) -> Any:
    """Dataclass (nested) -> plain dict of YAML/JSON types (tuples become lists)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    return obj


def read_yaml(path: str | Path) -> dict:
    """A YAML file -> dict; ConfigError naming the file when missing, malformed or not a mapping."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    try:
        check_regular_file(path)
    except Amodal3dError as error:  # a folder, a FIFO (which would block the reader) or a device
        raise ConfigError(str(error)) from None
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: malformed YAML ({error})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def load_config(path: str | Path, cls: type[T]) -> T:
    """Read the YAML file ``path`` into the dataclass ``cls`` (strict: unknown keys are errors)."""
    return from_dict(cls, read_yaml(path), source=str(path))


def dump_yaml(obj: Any) -> str:
    """Dataclass or dict -> YAML text (keys in field order)."""
    return yaml.safe_dump(to_dict(obj), sort_keys=False, default_flow_style=None)


def save_config(path: str | Path, obj: Any) -> Path:
    """Write a config as YAML, atomically."""
    return atomic_write_bytes(path, dump_yaml(obj).encode("utf-8"))


def load_experiment(cls: type[T], path: str | Path | None, train_overrides: dict | None = None,
                    init_given: bool = False) -> T:
    """An experiment dataclass (with a ``train`` section) from YAML, or its defaults when ``path`` is
    None; ``train_overrides`` (None values ignored) replace fields of ``train`` (CLI flags), checked like
    the file's values (a ConfigError naming ``command line`` and the key).

    A fine-tune round's top-level ``init`` (the round it continues, followed by ``amodal3d train all``)
    is dropped when the caller was given the weights to start from (``init_given``: ``--init``), and
    refused otherwise: training such a round alone from scratch would silently be another recipe."""
    data = read_yaml(path) if path else {}
    if isinstance(data, dict) and "init" in data:
        if not init_given:
            raise ConfigError(f"{path}: a fine-tune round (init: {data['init']}): pass the weights it starts "
                              f"from with --init, or train the whole chain with `amodal3d train all`")
        data = {k: v for k, v in data.items() if k != "init"}
    experiment = from_dict(cls, data, source=str(path or "<defaults>"))
    changes = {k: v for k, v in (train_overrides or {}).items() if v is not None}
    if not changes:
        return experiment
    return dataclasses.replace(experiment, train=replace_checked(experiment.train, changes, prefix="train."))
