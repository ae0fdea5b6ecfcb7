"""TOML settings: every flag has a key, flags win, `veil config --show` round-trips."""

from pathlib import Path

import pytest

from veil.cli import build_parser, job_options_from_args
from veil.config import dumps, effective, flag_actions, parse_with_config
from veil.errors import OptionError

from media import run_veil

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "veil.toml"
    path.write_text(text)
    return path


def test_every_flag_has_a_key():
    parser = build_parser()
    keys = set(flag_actions(parser))
    flags = {a.dest.replace("_", "-") for a in parser._actions if a.option_strings} - {
        "help",
        "version",
        "config",
    }
    assert keys == flags
    assert {"targets", "exclude-region", "keep-face", "max-size", "method"} <= keys


def test_settings_reach_the_job_options_and_flags_win(tmp_path):
    cfg = write(
        tmp_path,
        'method = "pixelate"\ntargets = "face,text"\nmax_size = 640\n'
        'exclude-region = ["0,0,10,10"]\nmin-score = ["text=0.6"]\ndraw-boxes = true\n'
        'color = "#ff0000"\n',
    )
    args = parse_with_config(build_parser(), ["in.jpg", "--config", str(cfg), "--max-size", "800"])
    job = job_options_from_args(args)
    assert job.anonymize.method == "pixelate"
    assert job.anonymize.draw_boxes
    assert job.anonymize.color == (0, 0, 255)
    assert job.detector.targets == ("face", "text")
    assert job.detector.max_size == 800
    assert job.filters.exclude == (((0, 0), (10, 0), (10, 10), (0, 10)),)
    assert job.filters.min_score == (("text", 0.6),)


def test_bad_settings_are_user_errors(tmp_path):
    with pytest.raises(OptionError, match="unknown setting 'blur_radius'"):
        parse_with_config(
            build_parser(), ["x.jpg", "--config", str(write(tmp_path, "blur_radius = 3\n"))]
        )
    with pytest.raises(OptionError, match="not valid TOML"):
        parse_with_config(
            build_parser(), ["x.jpg", "--config", str(write(tmp_path, "method = \n"))]
        )
    with pytest.raises(OptionError, match="not found"):
        parse_with_config(build_parser(), ["x.jpg", "--config", str(tmp_path / "none.toml")])
    with pytest.raises(SystemExit):  # argparse checks the value as if typed on the command line
        parse_with_config(
            build_parser(), ["x.jpg", "--config", str(write(tmp_path, 'method = "smudge"\n'))]
        )


def test_show_round_trips(tmp_path):
    cfg = write(
        tmp_path,
        'method = "fill"\ncolor = "#102030"\ninclude-region = ["0,0;0.5,0;0.5,1"]\n'
        "keep-metadata = true\n",
    )
    shown = run_veil("config", "--show", "--config", cfg, "--crf", "30", timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert 'method = "fill"' in shown.stdout
    assert "crf = 30" in shown.stdout
    assert "keep-metadata = true" in shown.stdout
    again = write(tmp_path, shown.stdout)
    first = job_options_from_args(
        parse_with_config(build_parser(), ["x", "--config", str(cfg), "--crf", "30"])
    )
    second = job_options_from_args(parse_with_config(build_parser(), ["x", "--config", str(again)]))
    assert first == second
    assert dumps(effective(build_parser(), ["--config", str(again)])) == shown.stdout
