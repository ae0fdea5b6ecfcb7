"""Settings from a TOML file: every command-line flag has a key named like the flag.

    # veil.toml
    method = "pixelate"
    targets = "face,text"
    max-size = 1280
    exclude-region = ["0,0,200,100"]

Keys are derived from the parser itself (the flag without its dashes; `-` and
`_` are the same), so every flag any part of veil adds is configurable with no
list to keep in step. The file is turned into flag tokens placed before the
command line's own, so the same parsing and checks apply and flags win.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import OptionError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

SKIP = {"help", "version", "config"}


def flag_actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """key -> action for every optional flag of the parser that holds a setting."""
    return {
        a.dest.replace("_", "-"): a
        for a in parser._actions
        if a.option_strings and a.dest not in SKIP and a.dest is not argparse.SUPPRESS
    }


def load(path: str | Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise OptionError(f"config file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise OptionError(f"config file {path} is not valid TOML: {exc}") from None


def _scalar(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if abs(value) < 1e15 else repr(value)
    return str(value)


def to_tokens(
    settings: dict[str, Any], parser: argparse.ArgumentParser, source: str = "config"
) -> list[str]:
    """Flag tokens equivalent to a settings mapping (unknown keys are a one-line error)."""
    actions = flag_actions(parser)
    tokens: list[str] = []
    for raw_key, value in settings.items():
        key = raw_key.replace("_", "-")
        action = actions.get(key)
        if action is None:
            raise OptionError(
                f"{source}: unknown setting {raw_key!r}; run 'veil config --show' for the keys"
            )
        flag = max(action.option_strings, key=len)
        if action.nargs == 0:
            if not isinstance(value, bool):
                raise OptionError(f"{source}: {raw_key} must be true or false")
            if value != bool(action.default):
                tokens.append(flag)
        elif isinstance(value, list):
            if isinstance(action, argparse._AppendAction):
                for item in value:
                    tokens += [flag, _scalar(item)]
            elif action.nargs in ("*", "+") or isinstance(action.nargs, int):
                tokens += [flag, *map(_scalar, value)]
            else:
                tokens += [flag, ",".join(map(_scalar, value))]
        else:
            tokens += [flag, _scalar(value)]
    return tokens


def _config_path(argv: Sequence[str]) -> str | None:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    return pre.parse_known_args(list(argv))[0].config


def parse_with_config(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """parse_args with the --config file's settings in front of the command line."""
    path = _config_path(argv)
    settings = load(path) if path else {}
    return parser.parse_args(to_tokens(settings, parser, str(path)) + list(argv))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def effective(parser: argparse.ArgumentParser, argv: Sequence[str]) -> dict[str, Any]:
    """Every setting's value after defaults, the config file and flags, as the user would write it.

    Values are reported as given (the raw text before conversion), so that a
    printed file reads back to the same settings.
    """
    given: dict[str, list[str]] = {}

    def recording(dest: str, convert):
        def wrapped(text: str):
            given.setdefault(dest, []).append(text)
            return convert(text) if convert else text

        return wrapped

    actions = flag_actions(parser)
    for action in parser._actions:
        if not action.option_strings:
            action.required, action.nargs = False, "*"  # inputs are not settings
        elif action in actions.values() and action.nargs != 0:
            action.type = recording(action.dest, action.type)
    args = parse_with_config(parser, argv)
    out: dict[str, Any] = {}
    for key, action in actions.items():
        value = getattr(args, action.dest)
        if action.dest in given and not isinstance(value, (bool, int, float, str)):
            raw = given[action.dest]
            value = (
                raw
                if isinstance(action, argparse._AppendAction) or action.nargs in ("*", "+")
                else raw[-1]
            )
        elif isinstance(value, tuple):
            value = ",".join(map(str, value))
        out[key] = value
    return out


def dumps(settings: dict[str, Any]) -> str:
    """TOML text; unset settings are listed as comments so every key is discoverable."""
    lines = []
    for key, value in settings.items():
        lines.append(f"# {key} = (not set)" if value is None else f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str]) -> int:
    """`veil config --show [--config FILE] [FLAGS]`: the settings a run with these would use."""
    from .cli import build_parser

    argv = list(argv)
    if "--show" not in argv:
        print("usage: veil config --show [--config FILE] [FLAGS...]", file=sys.stderr)
        return 2
    argv.remove("--show")
    sys.stdout.write(dumps(effective(build_parser(), argv)))
    return 0
