"""YAML -> a typed, frozen `Config`: unknown keys, wrong types and impossible values raise
`ConfigError` naming the key, e.g. `phases.1.epochs: must be >= 0, got -3`. Overrides use the same
dotted keys (`--set phases.1.epochs=3`). Only the standard library and PyYAML's safe loader
(without base-60 numbers).
"""

from __future__ import annotations

import dataclasses
import difflib
import sys
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from teacher_student.config.checks import check_config, check_value
from teacher_student.config.schema import Config
from teacher_student.errors import ConfigError
from teacher_student.training.methods import METHODS


def _convert(value: Any, annotation: Any, key: str) -> Any:
    """`value` as the type `annotation` says, or ConfigError naming `key`."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        for choice in inner[:-1]:  # the first type the value converts to
            try:
                return _convert(value, choice, key)
            except ConfigError:
                pass
        return _convert(value, inner[-1], key)
    if dataclasses.is_dataclass(annotation):
        return _build(annotation, value, key)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{key}.{i}") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{key}: must have {len(args)} items, got {list(value)!r}")
        return tuple(_convert(v, a, f"{key}.{i}") for i, (v, a) in enumerate(zip(value, args)))
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation in (int, float, str, bool):
        if type(value) is not annotation:
            raise ConfigError(
                f"{key}: must be {annotation.__name__}, got {type(value).__name__} {value!r}"
            )
        return value
    raise TypeError(f"unsupported config annotation {annotation!r} at {key}")


def _build(cls: type, data: Any, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise _unknown_key(f"{prefix}.{unknown[0]}" if prefix else unknown[0], names)
    values = {}
    for name, raw in data.items():
        key = f"{prefix}.{name}" if prefix else name
        values[name] = _convert(raw, hints[name], key)
        if not dataclasses.is_dataclass(hints[name]) and name != "phases":
            check_value(key, values[name])
    return cls(**values)


def _unknown_key(key: str, known: Iterable[str]) -> ConfigError:
    """`key: unknown key (known: ...)`, with the known key nearest to a misspelling."""
    nearest = difflib.get_close_matches(key.rpartition(".")[2], list(known), n=1)
    return ConfigError(f"{key}: unknown key (known: {', '.join(sorted(known))})"
                       + (f"; did you mean {nearest[0]}?" if nearest else ""))


def _to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [_to_plain(v) for v in obj]
    return obj


def from_dict(data: dict) -> Config:
    config = _build(Config, _with_method_sections(data), "")
    check_config(config)
    return config


_said: set[str] = set()  # the deprecated keys already said in this process


def _with_method_sections(data: Any) -> Any:
    """`data` with each method's flat keys of `distill` (`dkd_beta`, from before each method
    had a section) moved into its section (`dkd.beta`), where a flat key wins: it is the one
    written, or set last. Said once per process: the flat keys are deprecated."""
    distill = data.get("distill") if isinstance(data, dict) else None
    if not isinstance(distill, dict):
        return data
    distill, moved = dict(distill), []
    for name, method in METHODS.items():
        for flat, key in method.FLAT_KEYS.items():
            if flat in distill and isinstance(distill.get(name, {}), dict):
                distill[name] = {**distill.get(name, {}), key: distill.pop(flat)}
                moved.append(f"distill.{flat} as distill.{name}.{key}")
    if new := [text for text in moved if text not in _said]:
        _said.update(new)
        print(f"config: read {', '.join(new)}: the flat keys are deprecated, write the "
              "method's section instead", file=sys.stderr)
    return {**data, "distill": distill}


def to_dict(config: Config) -> dict:
    return _to_plain(config)


def _set_dotted(tree: dict, key: str, value: Any) -> None:
    """Set the dotted `key` of the config's plain tree; an unknown last key is set too, and
    caught when the tree is rebuilt."""
    parts = key.split(".")
    node: Any = tree
    for i, part in enumerate(parts):
        where, last = ".".join(parts[: i + 1]), i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"{where}: no such item (there are {len(node)})")
            part = int(part)
        elif not isinstance(node, dict):
            above = ".".join(parts[:i])
            raise ConfigError(f"{where}: unknown key ({above} is a value, {node!r}, with no "
                              "keys inside)")
        elif part not in node and not last:
            raise _unknown_key(where, node)
        if last:
            node[part] = value
        else:
            node = node[part]


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader without YAML 1.1's base-60 numbers: `1:30` stays the text it
    looks like (a bad duration, a folder name) instead of becoming the number 90."""


def _base_60_as_text(construct):
    def constructor(loader, node):
        return loader.construct_scalar(node) if ":" in node.value else construct(loader, node)
    return constructor


_Loader.add_constructor("tag:yaml.org,2002:int", _base_60_as_text(_Loader.construct_yaml_int))
_Loader.add_constructor("tag:yaml.org,2002:float",
                        _base_60_as_text(_Loader.construct_yaml_float))


def parse_yaml(text: str) -> Any:
    """A YAML document or value, read with the safe loader (no base-60 numbers)."""
    return yaml.load(text, Loader=_Loader)


def _parse_override(key: str, text: str) -> Any:
    try:
        return parse_yaml(text)
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or "cannot be parsed"
        raise ConfigError(f"{key}: {text!r} is not a YAML value ({problem})") from err


def apply_overrides(config: Config, overrides: list[str],
                    texts: Mapping[str, str] | None = None) -> Config:
    """`config` with each `dotted.key=value` of `overrides` applied, the values parsed as YAML
    (`[16, 32]`, `true`, `3`), then each key of `texts` set to its value as a plain string (a
    path or a name from the command line: `2024` and `x #1` stay text)."""
    tree = to_dict(config)
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"{item}: an override must look like key=value")
        _set_dotted(tree, key, _parse_override(key, text))
    for key, text in (texts or {}).items():
        _set_dotted(tree, key, text)
    return from_dict(tree)


PRESETS = Path(__file__).parent / "presets"


def find(name_or_path: str | Path) -> Path:
    """A config file: a path, or the name of one that ships with the package ("kaggle_t4")."""
    path = Path(name_or_path)
    if path.exists() or path.suffix:
        return path
    packaged = PRESETS / f"{name_or_path}.yaml"
    if packaged.exists():
        return packaged
    known = ", ".join(sorted(p.stem for p in PRESETS.glob("*.yaml")))
    raise ConfigError(f"{name_or_path}: no such config file or packaged config ({known})")


def load(path: str | Path | None = None, overrides: list[str] | None = None,
         texts: Mapping[str, str] | None = None) -> Config:
    """The config from a YAML file, a packaged config name or the defaults, with `overrides`
    and `texts` applied (see `apply_overrides`)."""
    data: dict = {}
    if path is not None:
        path = find(path)
        try:
            data = parse_yaml(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(f"{path}: cannot read config ({err})") from err
        try:
            config = from_dict(data)
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from err
    else:
        config = Config()
    return apply_overrides(config, overrides or [], texts)


def first_difference(a: Config, b: Config) -> str:
    """The dotted key of the first value that differs between two configs."""
    return _first_difference(to_dict(a), to_dict(b))


def _first_difference(a, b, prefix: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in a:
            if a[key] != b.get(key):
                return _first_difference(a[key], b.get(key), f"{prefix}{key}.")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return _first_difference(x, y, f"{prefix}{i}.")
    return prefix.rstrip(".") or "config"


def differences(a: Config, b: Config, sections: tuple[str, ...]) -> list[tuple[str, Any]]:
    """(dotted key, b's value) of every value of `sections` that differs between two configs."""
    found: list[tuple[str, Any]] = []
    for section in sections:
        _differences(to_dict(a)[section], to_dict(b)[section], section, found)
    return found


def _differences(a, b, key: str, found: list) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for name in a:
            _differences(a[name], b.get(name), f"{key}.{name}", found)
    elif a != b:
        found.append((key, b))


def to_yaml(config: Config) -> str:
    """The config as YAML, in field order: what a run directory keeps as config.yaml."""
    return yaml.safe_dump(to_dict(config), sort_keys=False)
