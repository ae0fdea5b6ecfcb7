"""`veil eval`: score a detector setting on labelled data, optionally beside deface."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from ..errors import OutputError
from ..options import CommandParser, build, check, option
from ..pipeline import JobOptions
from .datasets import DATA_ROOT_ENV, load, resolve
from .metrics import BUCKETS, summarize
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


def _fmt(value, percent: bool = True) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.1f}" if percent else f"{value:.1f}"


def format_table(dataset: str, rows: list[dict]) -> str:
    header = ["system", "AP50", "recall", "prec", *[f"R{b}" for b in BUCKETS], "leak", "fps"]
    lines = [
        (
            f"{dataset}: {rows[0]['faces']} faces in {rows[0]['images']} labelled images/frames "
            "(recall, precision and leaks at each system's operating threshold; % except fps)"
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
                _fmt(row["fps"], percent=False),
            ]
        )
    table.append(
        ["faces", "", "", "", *[str(rows[0]["buckets"][b]["faces"]) for b in BUCKETS], "", ""]
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
        },
        "datasets": {},
    }
    for name in args.datasets:
        dataset = load(resolve(name, settings.data_root), settings.subset)
        complete = dataset.kind == "image"
        rows = [score(run_veil(dataset, options, settings.limit), complete)]
        if "deface" in settings.compare:
            rows.append(score(run_deface(dataset, settings.limit), complete))
        report["datasets"][dataset.name] = {
            "kind": dataset.kind,
            "subset": dataset.subset,
            "results": rows,
        }
        print(format_table(dataset.name, rows))
        if not complete:
            print(
                "  (only some faces are labelled in these videos: AP and precision are not "
                "meaningful)"
            )
    if settings.json:
        try:
            Path(settings.json).write_text(json.dumps(report, indent=2, default=str))
        except OSError as exc:
            raise OutputError(f"cannot write {settings.json}: {exc.strerror or exc}") from None
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
