"""Settings declared once: a config dataclass field carries its help text and, through it, its command-line flag.

Every setting of a run lives in one typed tree of frozen dataclasses (``parabeam.pipelines.config.RunConfig``
for ``parabeam mine``, ``parabeam.encoders.train.TrainConfig`` for ``parabeam train``). A field made with
``option()`` documents itself, and the CLI derives its flag from it (``mining.threshold`` -> ``--threshold``):
a new setting is one field here plus the code that uses it; YAML presets and flags both map onto the tree
through ``apply_mapping``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any


def option(default: Any = dataclasses.MISSING, help: str = "", *, flag: str | None = None, cli: bool = True,
           metavar: str | None = None, parse: Callable[[str], Any] | None = None,
           choices: Iterable[Any] | None = None, default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field with its documentation. ``flag``: the command-line name (default ``--field-name``);
    ``cli=False`` keeps a setting to YAML presets; ``parse`` turns the flag's text into the value (default: from
    the field's type); ``choices``: the allowed values, from the table that owns them (default: a ``Literal``
    type's values)."""
    metadata = {"help": help, "flag": flag, "cli": cli, "metavar": metavar, "parse": parse,
                "choices": tuple(choices) if choices is not None else None}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class Flag:
    """One command-line flag derived from a config field."""

    path: tuple[str, ...]  # e.g. ("mining", "threshold")
    name: str  # "--threshold"
    help: str
    parse: Callable[[str], Any] | None
    choices: tuple[Any, ...] | None
    metavar: str | None
    boolean: bool
    default: Any


def _literal_choices(tp) -> tuple[Any, ...] | None:
    if typing.get_origin(tp) is typing.Literal:
        return typing.get_args(tp)
    return None


def _flag_type(tp) -> tuple[Callable[[str], Any] | None, tuple[Any, ...] | None, bool]:
    """(parser, choices, is_bool) for a field type: int, float, str, bool, Literal[...], or X | None of those."""
    choices = _literal_choices(tp)
    if choices is not None:
        return None, choices, False
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return _flag_type(args[0])
        return str, None, False
    if tp is bool:
        return None, None, True
    if tp in (int, float, str):
        return tp, None, False
    return str, None, False


def flags(config_cls: type, prefix: tuple[str, ...] = ()) -> list[Flag]:
    """Every flag of a config tree: fields made with ``option()`` and ``cli`` set, nested dataclasses walked."""
    hints = typing.get_type_hints(config_cls)
    out: list[Flag] = []
    for field in dataclasses.fields(config_cls):
        tp = hints[field.name]
        if dataclasses.is_dataclass(tp):
            out.extend(flags(tp, prefix + (field.name,)))
            continue
        meta = field.metadata
        if not meta.get("cli", False):
            continue
        parse, choices, boolean = _flag_type(tp)
        choices = meta.get("choices") or choices
        default = field.default if field.default is not dataclasses.MISSING else None
        out.append(Flag(prefix + (field.name,), meta.get("flag") or "--" + field.name.replace("_", "-"),
                        meta.get("help", ""), meta.get("parse") or parse, choices, meta.get("metavar"), boolean,
                        default))
    names = [f.name for f in out]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RuntimeError(f"config fields map to the same flag: {duplicates}; give one an explicit flag=")
    return out


def add_flags(parser, config_cls: type, *, only: tuple[str, ...] | None = None, plain: bool = False,
              defaults: dict[str, Any] | None = None) -> list[Flag]:
    """Adds the flags of ``config_cls`` to an argparse parser: every one, or the fields named in ``only``.

    For commands that merge flags over a YAML preset (``mine``, ``train``) values default to None (not given) and
    land in ``args.cfg__<path>`` (``flag_overrides`` reads them). ``plain``: for commands without presets, a
    flag's value lands in ``args.<field>`` and defaults to the field's default (or ``defaults[field]``)."""
    import argparse

    found = [f for f in flags(config_cls) if only is None or f.path[-1] in only]
    missing = set(only or ()) - {f.path[-1] for f in found}
    if missing:
        raise RuntimeError(f"{config_cls.__name__} has no flag for {sorted(missing)}")
    for f in found:
        dest = f.path[-1] if plain else "cfg__" + "__".join(f.path)
        default = (defaults or {}).get(f.path[-1], f.default) if plain else None
        shown_default = default if plain else f.default
        shown = "" if shown_default in (None, "") else f" (default: {shown_default})"
        if f.boolean:
            parser.add_argument(f.name, dest=dest, action=argparse.BooleanOptionalAction, default=default,
                                help=f.help + shown)
        else:
            metavar = f.metavar or (None if f.choices else f.path[-1].upper())
            parser.add_argument(f.name, dest=dest, type=f.parse, choices=f.choices, metavar=metavar,
                                default=default, help=f.help + shown)
    return found


def flag_overrides(args, found: list[Flag]) -> dict[str, Any]:
    """The flags given on the command line as a nested mapping ``{"mining": {"threshold": 1.3}}``."""
    out: dict[str, Any] = {}
    for f in found:
        value = getattr(args, "cfg__" + "__".join(f.path))
        if value is None:
            continue
        node = out
        for part in f.path[:-1]:
            node = node.setdefault(part, {})
        node[f.path[-1]] = value
    return out


def merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``, section by section."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def apply_mapping(config_cls: type, data: dict[str, Any] | None, where: str = "config"):
    """``config_cls`` built from a nested mapping (YAML, or flags merged over it); an unknown key is an error
    that names the known ones. Values are checked by the dataclasses' own ``__post_init__``."""
    data = dict(data or {})
    hints = typing.get_type_hints(config_cls)
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        import difflib

        hint = "".join(f" (did you mean {m[0]!r}?)" for u in unknown[:1]
                       for m in [difflib.get_close_matches(u, known, n=1)] if m)
        raise ValueError(f"unknown key(s) {unknown} in {where}{hint}; known: {sorted(known)}")
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            if value is not None and not isinstance(value, dict):
                raise ValueError(f"{where}.{name} must be a mapping, got {type(value).__name__}")
            kwargs[name] = apply_mapping(tp, value, f"{where}.{name}")
        else:
            kwargs[name] = value
    return config_cls(**kwargs)
