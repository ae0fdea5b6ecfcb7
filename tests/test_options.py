"""The option schema: one declaration per option gives every command's parser, checks and keys."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import import_module

import pytest

from veil.detectors import DetectorOptions
from veil.errors import OptionError
from veil.io.video import EncoderOptions
from veil.livestream import LiveOptions
from veil.options import (
    COMMANDS,
    GROUPS,
    CommandParser,
    build,
    declared,
    options_for,
    settings_toml,
)
from veil.pipeline import JobOptions

from media import ENV, run_veil

# Each command's parser, built by the module that runs the command (not by veil.cli).
PARSERS = {
    "main": "veil.cli:build_parser",
    "live": "veil.livestream.command:build_parser",
    "batch": "veil.batch.command:build_parser",
    "serve": "veil.web.server:build_parser",
    "eval": "veil.evaluation.command:build_parser",
}


def parser_for(command: str) -> CommandParser:
    if command == "demo":
        return CommandParser("demo")
    module, name = PARSERS[command].split(":")
    return getattr(import_module(module), name)()


def usage_flags(help_text: str) -> set[str]:
    """The options the usage line lists (argparse names each by its first flag)."""
    usage = help_text.split("\n\n", 1)[0]
    return set(re.findall(r"\[(-{1,2}[\w-]+)", usage))


@pytest.mark.parametrize("command", COMMANDS)
def test_help_lists_only_the_options_the_command_honours(command):
    text = parser_for(command).format_help()
    expected = {o.flags[0] for o in options_for(command)} | {"-h", "--config"}
    if command == "main":
        expected.add("--version")
    assert usage_flags(text) == expected


@pytest.mark.parametrize("command", COMMANDS)
def test_each_group_is_listed_once(command):
    lines = parser_for(command).format_help().splitlines()
    for group in GROUPS:
        assert lines.count(f"{group}:") <= 1, group
    used = {o.group for o in options_for(command)}
    assert all(lines.count(f"{group}:") == 1 for group in used)


def test_every_option_is_declared_once_per_command():
    for command in COMMANDS:
        keys = [o.key for o in options_for(command)]
        assert len(keys) == len(set(keys)), command
    assert all(o.group in GROUPS for o in declared())
    assert all(o.commands for o in declared())
    assert all(o.help for o in declared())


def test_no_command_module_imports_the_cli():
    """Sub-commands parse with the schema, so none borrows veil.cli's argument builders."""
    code = (
        "import sys, veil.config, veil.demo, veil.batch.command, veil.evaluation.command, "
        "veil.livestream.command, veil.web.server, veil.options; "
        "veil.options.declared(); print('veil.cli' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV)
    assert out.stdout.strip() == "False", out.stderr


def test_every_parser_builds_without_the_optional_extras():
    """The schema imports each declaring module: none may need an extra to declare its options."""
    code = (
        "import sys\n"
        "for name in ('fastapi', 'uvicorn', 'ray', 'fsspec', 's3fs', 'mediapipe', 'dlib'):\n"
        "    sys.modules[name] = None\n"
        "from veil.options import COMMANDS, CommandParser\n"
        "print(sum(len(CommandParser(c).format_help()) > 0 for c in COMMANDS))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV)
    assert out.stdout.strip() == str(len(COMMANDS)), out.stderr


def test_parsed_arguments_become_the_dataclasses():
    args = CommandParser("main").parse_args(
        ["--threshold", "0.3", "--targets", "face, text", "--no-audio", "-m", "pixelate"]
    )
    job = build(JobOptions, args, "main")
    assert job.detector == DetectorOptions(threshold=0.3, targets=("face", "text"))
    assert job.encoder == EncoderOptions(keep_audio=False)
    assert job.anonymize.method == "pixelate"


def test_per_command_defaults_and_units():
    live = CommandParser("live").parse_args(["--max-latency", "250", "--no-reconnect"])
    assert build(JobOptions, live, "live").encoder.preset == "ultrafast"
    assert build(LiveOptions, live, "live") == LiveOptions(max_latency=0.25, reconnect=False)
    main = CommandParser("main").parse_args([])
    assert build(JobOptions, main, "main").encoder.preset == "superfast"


def test_options_a_command_does_not_honour_keep_their_defaults():
    args = CommandParser("main").parse_args(["--lookahead", "3"])
    assert build(JobOptions, args, "main").tracking.lookahead == 3
    assert build(JobOptions, args, "live").tracking.lookahead == 1.0


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: DetectorOptions(threshold=2), "--threshold must be between 0 and 1"),
        (lambda: DetectorOptions(max_size=0), "--max-size must be more than 0"),
        (lambda: DetectorOptions(full_every=0), "--full-every must be at least 1"),
        (lambda: DetectorOptions(quality="ultra"), "--quality: invalid choice 'ultra'"),
        (lambda: DetectorOptions(threshold=float("nan")), "--threshold must be between"),
        (lambda: DetectorOptions(threshold="high"), "--threshold must be between"),
        (lambda: LiveOptions(max_latency=-0.01), "--max-latency must be at least 0"),
        (lambda: EncoderOptions(crf=-1), "--crf must be at least 0"),
    ],
)
def test_values_are_checked_by_the_dataclass(make, message):
    with pytest.raises(OptionError, match=message):
        make()


def test_the_parser_only_converts_text_and_the_dataclass_checks_it():
    args = CommandParser("main").parse_args(["--threshold", "2", "--quality", "ultra"])
    assert (args.threshold, args.quality) == (2.0, "ultra")
    with pytest.raises(OptionError, match="--threshold"):
        build(JobOptions, args, "main")


def test_a_bad_detection_value_is_one_line(tmp_path):
    proc = run_veil(tmp_path / "x.jpg", "--threshold", "2", timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "veil: error: --threshold must be between 0 and 1"


def test_text_that_is_not_a_value_is_refused_by_the_parser():
    with pytest.raises(SystemExit):
        CommandParser("main").parse_args(["--threshold", "high"])
    with pytest.raises(OptionError, match="bad region"):
        CommandParser("main").parse_args(["--include-region", "1,2"])


def test_every_command_prints_settings_that_read_back(tmp_path):
    for command in COMMANDS:
        parser = CommandParser(command, settings_only=True)
        shown = settings_toml(parser.parse_args([]), command)
        path = tmp_path / f"{command}.toml"
        path.write_text(shown)
        again = CommandParser(command, settings_only=True).parse_args(["--config", str(path)])
        assert settings_toml(again, command) == shown, command
