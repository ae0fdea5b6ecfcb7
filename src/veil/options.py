"""The option schema: every setting is declared once, on the dataclass field it sets.

    threshold: float = option(0.2, "--threshold", "-t", group="detection", commands=DETECT,
                              ge=0, le=1, help="minimum detection score (default %(default)s)")

A declaration carries the flags, how one word of text becomes the value, the help,
the choices or range, the help group and the commands that honour it: `veil INPUT`
("main"), live, batch, serve, eval and demo. From the declarations come each
command's parser (`CommandParser`: only the options that command honours, each group
once), the dataclasses built from parsed arguments (`build`), the keys of a TOML
`--config FILE` (the long flag without its dashes; flags win over the file),
`veil config --show`, the web page's form (web/options.py reads `web=`) and
docs/options.md (`veil config --doc`). A value is checked once, by its dataclass
(`check` in `__post_init__`); parsers only turn text into values.

This module imports only the standard library, so every stage can declare its
options with it; the declaring modules are imported when a command asks for them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import import_module
from pathlib import Path
from typing import Any, TypeVar

from .errors import OptionError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

COMMANDS = ("main", "live", "batch", "serve", "eval", "demo")
# The commands that run each stage; most options are honoured by one of these sets.
DETECT = ("main", "live", "batch", "serve", "eval")
FILTER = ("main", "live", "batch")
HIDE = ("main", "live", "batch", "demo")
TRACK = ("main", "live", "batch", "eval")
ENCODE = ("main", "live", "batch")

GROUPS = (
    "output",
    "detection",
    "targets and filters",
    "anonymization",
    "tracking and review (videos)",
    "video output",
    "real time",
    "batch",
    "server",
    "evaluation",
)

# Dataclasses declaring options besides CommandLine below; option dataclasses nested in
# their fields (JobOptions' detector, tracking, ...) are found through them.
DECLARED_IN = (
    "veil.pipeline:JobOptions",
    "veil.livestream.realtime:LiveOptions",
    "veil.livestream.command:LiveCommand",
    "veil.batch.runner:BatchOptions",
    "veil.web.server:ServerConfig",
    "veil.evaluation.command:EvalOptions",
    "veil.demo:DemoOptions",
)
METADATA_KEY = "veil.option"

T = TypeVar("T")


@dataclass(frozen=True)
class Web:
    """How the web page offers an option, within limits that keep its result safe.

    choices: the values offered (a subset of the option's), shown as `labels`.
    ge, le, step, unit: a number's range and slider step.
    by, ranges, levels: a number picked as a named level ("strong") whose value and
    safe range depend on another web option's value (the method); a value of `by`
    without a range leaves this option unset.
    """

    label: str
    choices: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    ge: float | None = None
    le: float | None = None
    step: float | None = None
    unit: str = ""
    by: str = ""
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    levels: Mapping[str, Mapping[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class Option:
    """One setting, as `option()` records it on a dataclass field.

    type: one word of text -> the value (an item, when `repeat`); default: the
    type of the default. show: the inverse, value -> what a user writes. scale:
    the field holds the typed number times this (milliseconds typed, seconds kept).
    negate: a switch whose flag sets the field to False (--no-audio). defaults:
    per-command defaults. name, default and required (no default) come from the field.
    """

    flags: tuple[str, ...]
    help: str
    group: str
    commands: frozenset[str]
    type: Callable[[str], Any] | None = None
    show: Callable[[Any], Any] | None = None
    choices: tuple[Any, ...] = ()
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    metavar: str | None = None
    repeat: bool = False
    collect: Callable[[list[Any]], Any] = tuple
    negate: bool = False
    scale: float = 1
    defaults: Mapping[str, Any] = field(default_factory=dict)
    required: bool = False
    web: Web | None = None
    name: str = ""
    default: Any = None

    @property
    def flag(self) -> str:
        return next(f for f in self.flags if f.startswith("--"))

    @property
    def key(self) -> str:
        """The TOML key: the long flag without its dashes."""
        return self.flag[2:]

    @property
    def dest(self) -> str:
        return self.key.replace("-", "_")

    @property
    def switch(self) -> bool:
        return isinstance(self.default, bool)

    def default_for(self, command: str) -> Any:
        return self.defaults.get(command, self.default)

    # -- text <-> values ------------------------------------------------------------------
    def word(self, text: str) -> Any:
        """One word of text (typed after the flag, or a TOML scalar) -> the value, or one item."""
        convert = self.type
        if convert is None:
            convert = type(self.default) if isinstance(self.default, (int, float, str)) else str
        try:
            value = convert(text)
        except ValueError as exc:
            if self.type is None:
                raise ValueError(f"invalid {convert.__name__} value: {text!r}") from None
            raise ValueError(str(exc) or f"invalid value: {text!r}") from None
        return value * self.scale if self.scale != 1 else value

    def given(self, value: Any) -> Any:
        """What argparse stored for a flag on the command line -> the field's value."""
        if self.switch:
            return not self.negate
        return self.collect(value) if self.repeat else value

    def from_setting(self, value: Any) -> Any:
        """A TOML value -> the field's value (ValueError with the reason)."""
        if isinstance(value, dict):
            raise ValueError("expected a value, not a table")
        if self.switch:
            if not isinstance(value, bool):
                raise ValueError("must be true or false")
            return value != self.negate
        if self.repeat:
            return self.collect([self.word(_scalar(v)) for v in _as_list(value)])
        if isinstance(value, list):
            value = ",".join(map(_scalar, value))
        return self.word(_scalar(value))

    def to_setting(self, value: Any) -> Any:
        """The field's value -> what a user writes in TOML (None when unset)."""
        if value is None:
            return None
        if self.switch:
            return value != self.negate
        if self.repeat:
            items = value.items() if isinstance(value, Mapping) else value
            return [self._shown(item) for item in items]
        return self._shown(value)

    def _shown(self, value: Any) -> Any:
        if self.show is not None:
            return self.show(value)
        if isinstance(value, Path):
            return str(value)
        if self.scale != 1:
            value = value / self.scale
        return _number(value) if isinstance(value, float) else value

    # -- checks -----------------------------------------------------------------------------
    def check(self, value: Any) -> None:
        """OptionError unless every item of the value is a choice and inside the range."""
        if value is None:
            return
        for item in value if isinstance(value, tuple) else (value,):
            if self.choices and item not in self.choices:
                raise OptionError(
                    f"{self.flag}: invalid choice {item!r}; "
                    f"choose from: {', '.join(map(str, self.choices))}"
                )
            if self.bounded and not self._inside(item):
                raise OptionError(f"{self.flag} must be {self.range_text()}")

    @property
    def bounded(self) -> bool:
        return any(b is not None for b in (self.ge, self.gt, self.le, self.lt))

    def _inside(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return not (
            (self.ge is not None and not value >= self.ge)
            or (self.gt is not None and not value > self.gt)
            or (self.le is not None and not value <= self.le)
            or (self.lt is not None and not value < self.lt)
        )

    def range_text(self) -> str:
        """The range as the user types it: 'between 0 and 1', 'more than 0', ..."""

        def typed(bound: float) -> str:
            return str(_number(bound / self.scale))

        if self.ge is not None and self.le is not None:
            return f"between {typed(self.ge)} and {typed(self.le)}"
        words = (("ge", "at least"), ("gt", "more than"), ("le", "at most"), ("lt", "less than"))
        return " and ".join(
            f"{text} {typed(getattr(self, name))}"
            for name, text in words
            if getattr(self, name) is not None
        )

    # -- argparse ------------------------------------------------------------------------------
    def help_for(self, command: str) -> str:
        shown = self.to_setting(self.default_for(command))
        return self.help % {"default": _plain(shown)}

    def add_to(self, group: Any, command: str) -> None:
        kwargs: dict[str, Any] = {
            "dest": self.dest,
            "default": argparse.SUPPRESS,
            "help": self.help_for(command).replace("%", "%%"),
        }
        if self.switch:
            kwargs["action"] = "store_true"
        else:
            kwargs["type"] = self._argparse_type
            if self.repeat:
                kwargs["action"] = "append"
            if self.metavar:
                kwargs["metavar"] = self.metavar
            elif self.choices:
                kwargs["metavar"] = "{" + ",".join(map(str, self.choices)) + "}"
        group.add_argument(*self.flags, **kwargs)

    def _argparse_type(self, text: str) -> Any:
        try:
            return self.word(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None


def option(
    default: Any,
    *flags: str,
    help: str,
    group: str,
    commands: Iterable[str],
    **spec: Any,
) -> Any:
    """A dataclass field that is also a command-line option, a config key, maybe a web control.

    flags: the first long one names the TOML key. Mutable defaults (a dict) are
    copied for each instance; without a default (dataclasses.MISSING) the option is
    required. spec: the other attributes of `Option`.
    """
    declared = Option(flags=flags, help=help, group=group, commands=frozenset(commands), **spec)
    if not any(f.startswith("--") for f in flags):
        raise ValueError(f"option {flags} needs a long flag")
    if group not in GROUPS or not declared.commands <= set(COMMANDS):
        raise ValueError(f"option {flags}: unknown group {group!r} or commands {commands}")
    metadata = {METADATA_KEY: declared}
    if default is dataclasses.MISSING:
        return field(metadata=metadata)
    if isinstance(default, (dict, list, set)):
        return field(default_factory=lambda: type(default)(default), hash=False, metadata=metadata)
    return field(default=default, metadata=metadata)


# -- reading the declarations -------------------------------------------------------------------
def _nested(f: dataclasses.Field) -> type | None:
    """The option dataclass a field holds (JobOptions.detector), if it holds one."""
    if dataclasses.is_dataclass(f.default):
        return type(f.default)
    factory = f.default_factory
    if isinstance(factory, type) and dataclasses.is_dataclass(factory):
        return factory
    return None


def _declared(f: dataclasses.Field) -> Option | None:
    found = f.metadata.get(METADATA_KEY)
    if found is None:
        return None
    if f.default is not dataclasses.MISSING:
        default = f.default
    elif f.default_factory is not dataclasses.MISSING:
        default = f.default_factory()
    else:
        return dataclasses.replace(found, name=f.name, default=None, required=True)
    return dataclasses.replace(found, name=f.name, default=default)


@cache
def options_of(cls: type) -> tuple[Option, ...]:
    """The options declared on a dataclass's own fields (not nested ones)."""
    return tuple(o for o in map(_declared, dataclasses.fields(cls)) if o is not None)


@cache
def options_in(cls: type) -> tuple[Option, ...]:
    """The options declared on a dataclass and on the option dataclasses in its fields."""
    return tuple(_walk(cls, set()))


def _walk(cls: type, seen: set[type]) -> Iterator[Option]:
    if cls in seen:
        return
    seen.add(cls)
    for f in dataclasses.fields(cls):
        sub = _nested(f)
        if sub is not None:
            yield from _walk(sub, seen)
    yield from options_of(cls)


def _load(target: str) -> type:
    module, name = target.split(":")
    return getattr(import_module(module), name)


@cache
def declared() -> tuple[Option, ...]:
    """Every option of every command, in declaration order."""
    seen: set[type] = set()
    found: list[Option] = []
    for cls in (CommandLine, *map(_load, DECLARED_IN)):
        found += _walk(cls, seen)
    return tuple(found)


@cache
def options_for(command: str) -> tuple[Option, ...]:
    """The options a command honours, in GROUPS order: its flags, config keys and --show lines."""
    if command not in COMMANDS:
        raise ValueError(f"unknown command {command!r}")
    chosen = [o for o in declared() if command in o.commands]
    keys = [o.key for o in chosen]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise RuntimeError(f"{prog(command)} declares --{', --'.join(twice)} more than once")
    return tuple(sorted(chosen, key=lambda o: GROUPS.index(o.group)))


def prog(command: str) -> str:
    return "veil" if command == "main" else f"veil {command}"


def check(instance: Any) -> None:
    """OptionError for the first declared field outside its choices or range.

    Option dataclasses call this from `__post_init__`, so a value is checked the same
    way whether it came from a flag, a config file, the web page or Python.
    """
    for declared_option in options_of(type(instance)):
        declared_option.check(getattr(instance, declared_option.name))


def build(
    cls: type[T], settings: argparse.Namespace | Mapping[str, Any], command: str, **given: Any
) -> T:
    """cls (and the option dataclasses in its fields) from a command's parsed settings.

    Options the command does not honour, and fields that are not options, keep their
    defaults; `given` sets fields of cls directly.
    """
    values = vars(settings) if isinstance(settings, argparse.Namespace) else settings
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in given or not f.init:
            continue
        sub = _nested(f)
        found = f.metadata.get(METADATA_KEY)
        if sub is not None:
            kwargs[f.name] = build(sub, values, command)
        elif found is not None and command in found.commands and found.dest in values:
            kwargs[f.name] = values[found.dest]
    return cls(**kwargs, **given)


def update(instance: T, values: Mapping[str, Any]) -> T:
    """instance with the options named in values (by dest) replaced, nested dataclasses too."""
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(instance):  # type: ignore[arg-type]
        current = getattr(instance, f.name)
        found = f.metadata.get(METADATA_KEY)
        if _nested(f) is not None and dataclasses.is_dataclass(current):
            changed = update(current, values)
            if changed is not current:
                changes[f.name] = changed
        elif found is not None and found.dest in values:
            changes[f.name] = values[found.dest]
    return dataclasses.replace(instance, **changes) if changes else instance  # type: ignore[type-var]


# -- command lines and config files ------------------------------------------------------------
class CommandParser(argparse.ArgumentParser):
    """The parser of one command: the options it honours in their groups, and --config FILE.

    Parsed arguments hold every option's effective value: the flag's, else the
    config file's, else the command's default. The caller adds the command's
    positional arguments (inputs, not settings). settings_only: skip the checks for
    required options (`veil config --show` prints settings without running anything).
    """

    def __init__(self, command: str, *, settings_only: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("prog", prog(command))
        super().__init__(**kwargs)
        self.command = command
        self.settings_only = settings_only
        self.options = options_for(command)
        self.add_argument(
            "--config",
            metavar="FILE",
            help="read settings from a TOML file; flags given here win "
            f"('{show_command(command)}' prints every key)",
        )
        groups: dict[str, Any] = {}
        for declared_option in self.options:
            if declared_option.group not in groups:
                groups[declared_option.group] = self.add_argument_group(declared_option.group)
            declared_option.add_to(groups[declared_option.group], command)

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        parsed, extras = super().parse_known_args(args, namespace)
        from_file = load_settings(parsed.config, self.command) if parsed.config else {}
        for declared_option in self.options:
            dest = declared_option.dest
            if hasattr(parsed, dest):
                value = declared_option.given(getattr(parsed, dest))
            elif declared_option.key in from_file:
                value = from_file[declared_option.key]
            else:
                value = declared_option.default_for(self.command)
            if value is None and declared_option.required and not self.settings_only:
                self.error(
                    f"the following arguments are required: {'/'.join(declared_option.flags)}"
                )
            setattr(parsed, dest, value)
        return parsed, extras


def show_command(command: str) -> str:
    return "veil config --show" + ("" if command == "main" else f" {command}")


def read_toml(path: str | Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise OptionError(f"config file not found: {path}") from None
    except OSError as exc:
        raise OptionError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise OptionError(f"config file {path} is not valid TOML: {exc}") from None


def load_settings(path: str | Path, command: str) -> dict[str, Any]:
    """A TOML file's settings for a command: key -> value (one-line OptionError if bad).

    A key is the long flag without its dashes; `-` and `_` are the same.
    """
    known = {o.key: o for o in options_for(command)}
    out: dict[str, Any] = {}
    for raw_key, value in read_toml(path).items():
        key = raw_key.replace("_", "-")
        found = known.get(key)
        if found is None:
            others = [prog(c) for c in COMMANDS if any(o.key == key for o in options_for(c))]
            where = f" (a setting of {', '.join(others)})" if others else ""
            raise OptionError(
                f"{path}: unknown setting {raw_key!r} for {prog(command)}{where}; "
                f"'{show_command(command)}' lists the keys"
            )
        try:
            out[key] = found.from_setting(value)
        except (ValueError, TypeError) as exc:
            raise OptionError(f"{path}: {raw_key}: {exc}") from None
    return out


def settings_toml(settings: argparse.Namespace | Mapping[str, Any], command: str) -> str:
    """A command's settings as TOML, itself a valid --config file; unset keys as comments."""
    values = vars(settings) if isinstance(settings, argparse.Namespace) else settings
    lines = [f"# {prog(command)}: defaults, then the --config file, then flags"]
    group = None
    for declared_option in options_for(command):
        if declared_option.group != group:
            group = declared_option.group
            lines += ["", f"# {group}"]
        value = declared_option.to_setting(values[declared_option.dest])
        key = declared_option.key
        lines.append(f"# {key} = (not set)" if value is None else f"{key} = {toml_value(value)}")
    return "\n".join(lines) + "\n"


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(toml_value, value)) + "]"
    return json.dumps(str(value), ensure_ascii=False)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def _number(value: float) -> int | float:
    """A float as a user writes it: 1000.0 -> 1000, 0.30000000000000004 -> 0.3."""
    value = float(f"{value:.12g}")
    return int(value) if value.is_integer() and abs(value) < 1e15 else value


def _plain(value: Any) -> str:
    """A setting as help text shows it."""
    if value is None:
        return "none"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


@dataclass(frozen=True)
class CommandLine:
    """Settings of a command line itself rather than of a stage."""

    output: str | None = option(
        None,
        "-o",
        "--output",
        group="output",
        commands=("main",),
        metavar="OUT",
        help="output file, or folder for several inputs (default: beside each input with a suffix)",
    )
    quiet: bool = option(
        False,
        "-q",
        "--quiet",
        group="output",
        commands=("main", "live", "batch", "demo"),
        help="no progress bars, messages or summary",
    )
