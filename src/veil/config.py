"""`veil config`: a command's effective settings as TOML, and the reference of every option.

    veil config --show [COMMAND] [--config FILE] [FLAGS...]
    veil config --doc > docs/options.md

--show prints what a run of COMMAND (default: `veil INPUT`) with that file and
those flags would use, as a TOML file that reads back to the same settings.
--doc prints the option reference in Markdown. Both read the option schema
(options.py), where each option is declared once.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .errors import OptionError
from .options import COMMANDS, GROUPS, CommandParser, Option, declared, prog, settings_toml

USAGE = "usage: veil config --show [COMMAND] [--config FILE] [FLAGS...] | veil config --doc"
DOC_HEADER = """\
# Option reference

Generated from the option schema by `veil config --doc` (tests/test_config.py checks
this page is up to date). Every option is declared once, on the field of the option
dataclass it sets (src/veil/options.py explains how); the flags, the `--config FILE`
keys, `veil config --show`, the web page's controls and this page all come from there.

A settings file (`--config FILE`, honoured by every command) uses the long flag
without its dashes as the key (`-` and `_` are the same); repeatable flags take lists,
switches take `true` or `false`, and flags given on the command line win over the
file. A key the command does not use is an error. `veil config --show [COMMAND]`
prints every key of a command with its effective value.
"""


def main(argv: Sequence[str]) -> int:
    argv = list(argv)
    if argv == ["--doc"]:
        sys.stdout.write(reference())
        return 0
    if "--show" not in argv:
        raise OptionError(USAGE)
    argv.remove("--show")
    command = argv.pop(0) if argv and argv[0] in COMMANDS[1:] else "main"
    parser = CommandParser(command, prog=f"veil config --show {command}", settings_only=True)
    sys.stdout.write(settings_toml(parser.parse_args(argv), command))
    return 0


def _commands(declared_option: Option) -> str:
    return ", ".join(f"`{prog(c)}`" for c in COMMANDS if c in declared_option.commands)


def _default(declared_option: Option) -> str:
    if declared_option.required:
        return "required"
    shown = [
        (command, declared_option.to_setting(declared_option.default_for(command)))
        for command in COMMANDS
        if command in declared_option.commands
    ]
    main = declared_option.to_setting(declared_option.default)
    text = "" if main is None else f"`{_plain(main)}`"
    for command, value in shown:
        if value != main:
            text += f" ({prog(command)}: `{_plain(value)}`)"
    return text.strip()


def _plain(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "[]"
    return str(value)


def _meaning(declared_option: Option) -> str:
    first = next(c for c in COMMANDS if c in declared_option.commands)
    text = declared_option.help_for(first)
    if declared_option.choices:
        text += "; one of " + ", ".join(f"`{c}`" for c in declared_option.choices)
    if declared_option.bounded:
        text += f"; {declared_option.range_text()}"
    if declared_option.web is not None:
        text += "; on the web page too"
    return text.replace("|", "\\|")


def reference() -> str:
    """Every option in Markdown, one table per group."""
    lines = [DOC_HEADER]
    for group in GROUPS:
        rows = [o for o in declared() if o.group == group]
        lines += [
            f"## {group}",
            "",
            "| flag | default | commands | meaning |",
            "|---|---|---|---|",
        ]
        for o in rows:
            flags = ", ".join(f"`{f}`" for f in o.flags)
            lines.append(f"| {flags} | {_default(o)} | {_commands(o)} | {_meaning(o)} |")
        lines.append("")
    return "\n".join(lines)
