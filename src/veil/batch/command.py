"""`veil batch INPUT -o OUTPUT`: parse arguments, run the batch, print and save the summary."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..cli import (
    add_anonymize_arguments,
    add_detector_arguments,
    add_encoder_arguments,
    add_tracking_arguments,
    job_options_from_args,
)
from ..errors import OptionError
from ..io.export import FORMATS
from .engines import ENGINES
from .runner import BatchOptions, describe_failure, run_batch
from .segments import DEFAULT_OVERLAP
from .work import Outcome

EXAMPLES = """\
examples:
  veil batch photos/ -o anonymized/                 a folder tree, mirrored, on all cores
  veil batch list.txt -o out/ --workers 4           the files named in a manifest (.txt or .csv)
  veil batch s3://bucket/raw/ -o s3://bucket/anon/  object storage (pip install 'veil[batch]')
  veil batch in/ -o out/ --engine ray --address HOST:6379   tasks on a Ray cluster (pip install 'veil[ray]')

A rerun with the same output skips files already done with the same settings,
retries failed ones and redoes those whose input or settings changed.
Exit codes: 0 all files done, 1 some files failed (listed in the summary), 2 bad input or option,
130 interrupted (finished files stay recorded).
"""


def _workers(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive number")
    return value


def _storage_option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError("expected KEY=VALUE")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="veil batch",
        description="Anonymize a folder, a manifest or an object-storage prefix, resumably.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "input",
        metavar="INPUT",
        help="folder (searched recursively), manifest (.txt/.csv of paths or URLs), or URL prefix",
    )
    group = parser.add_argument_group("batch")
    group.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUTPUT",
        help="folder or URL prefix; the input's folder structure is mirrored there",
    )
    group.add_argument(
        "--workers",
        "-j",
        type=_workers,
        default=os.cpu_count() or 1,
        help="local worker processes, each with its own detector (default: cores, %(default)s)",
    )
    group.add_argument(
        "--engine",
        choices=ENGINES,
        default="local",
        help="local process pool, or tasks on a Ray cluster (default %(default)s)",
    )
    group.add_argument(
        "--address",
        metavar="ADDR",
        help="Ray cluster address (default: RAY_ADDRESS, a cluster on this machine, "
        "else a new local one)",
    )
    group.add_argument(
        "--journal",
        type=Path,
        metavar="PATH",
        help="SQLite journal of finished files (default: veil-batch.sqlite in a local output folder, "
        "or in the current folder for remote outputs)",
    )
    group.add_argument(
        "--summary",
        type=Path,
        metavar="PATH",
        help="where to write the JSON summary (default: beside the journal)",
    )
    group.add_argument(
        "--storage-option",
        type=_storage_option,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="fsspec option for object storage, e.g. endpoint_url=http://127.0.0.1:9000 (repeatable)",
    )
    group.add_argument(
        "--keep-metadata",
        action="store_true",
        help="keep EXIF/GPS and container tags (dropped by default)",
    )
    group.add_argument(
        "--export",
        choices=FORMATS,
        metavar="FORMAT",
        help="also write detections per frame beside each output: " + ", ".join(FORMATS),
    )
    group.add_argument(
        "--segment-seconds",
        type=_positive_float,
        metavar="S",
        help="split local videos longer than this at keyframes into segments processed in parallel, "
        "joined without re-encoding",
    )
    group.add_argument(
        "--segment-overlap",
        type=_positive_float,
        default=DEFAULT_OVERLAP,
        metavar="S",
        help="seconds decoded before and after each segment so tracking continues across the cut "
        "(default %(default)s)",
    )
    group.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    add_detector_arguments(parser)
    add_anonymize_arguments(parser)
    add_tracking_arguments(parser)
    add_encoder_arguments(parser)
    return parser


class Progress:
    """One bar over files; failures are printed as they happen."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar = None

    def __call__(self, outcome: Outcome, total: int) -> None:
        if not outcome.ok:
            message = f"veil: failed: {describe_failure(outcome.key, outcome.error)}"
            if self.bar is not None:
                self.bar.write(message, file=sys.stderr)
            else:
                print(message, file=sys.stderr)
        if self.quiet:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total, unit="file", file=sys.stderr, leave=False, dynamic_ncols=True
            )
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.address and args.engine != "ray":
        raise OptionError("--address is for --engine ray")
    options = BatchOptions(
        input=args.input,
        output=args.output,
        job=job_options_from_args(args),
        workers=args.workers,
        engine=args.engine,
        address=args.address,
        journal=args.journal,
        summary=args.summary,
        storage_options=dict(args.storage_option),
        segment_seconds=args.segment_seconds,
        segment_overlap=args.segment_overlap,
    )
    progress = Progress(args.quiet)
    try:
        summary = run_batch(options, progress)
    finally:
        progress.close()
    if not args.quiet:
        print(summary.text(), file=sys.stderr)
    return 1 if summary.failed else 0
