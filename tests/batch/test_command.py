"""`veil batch` parses with the option schema: the stage options the single-file command has."""

from __future__ import annotations

import cv2
import numpy as np

from veil.batch.command import build_parser
from veil.batch.command import main as batch_main
from veil.batch.runner import BatchOptions
from veil.options import build

from batch_media import make_tree
from media import run_veil


def test_targets_and_filters_are_accepted(tmp_path):
    args = build_parser().parse_args(
        ["in", "-o", "out", "--targets", "face,person", "--min-face-size", "12"]
    )
    options = build(BatchOptions, args, "batch", input=args.input)
    assert options.job.detector.targets == ("face", "person")
    assert options.job.filters.min_face == 12


def test_person_target_runs(tmp_path):
    make_tree(tmp_path / "in", images=1, video=False, bad=False)
    proc = run_veil(
        "batch", tmp_path / "in", "-o", tmp_path / "out", "--targets", "face,person", "-j", "1"
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "day0" / "photo0.jpg").is_file()


def test_config_file_is_honoured_and_flags_win(tmp_path):
    make_tree(tmp_path / "in", images=1, video=False, bad=False)
    config = tmp_path / "batch.toml"
    config.write_text(
        f'output = "{(tmp_path / "out").as_posix()}"\nmethod = "fill"\ncolor = "#00ff00"\n'
        "workers = 1\nquiet = true\n"
    )
    assert batch_main([str(tmp_path / "in"), "--config", str(config), "--color", "#0000ff"]) == 0
    out = cv2.imread(str(tmp_path / "out" / "day0" / "photo0.jpg"))
    assert np.abs(out[60, 113].astype(int) - [255, 0, 0]).max() < 40


def test_output_is_required(tmp_path):
    proc = run_veil("batch", tmp_path, timeout=120)
    assert proc.returncode == 2
    assert "required: -o/--output" in proc.stderr
