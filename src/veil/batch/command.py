"""`veil batch INPUT -o OUTPUT`: parse arguments, run the batch, print and save the summary."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..options import CommandParser, build
from .runner import BatchOptions, describe_failure, run_batch
from .work import Outcome

EXAMPLES = """\
examples:
  veil batch photos/ -o anonymized/                 a folder tree, mirrored, on all cores
  veil batch list.txt -o out/ --workers 4           the files named in a manifest (.txt or .csv)
  veil batch s3://bucket/raw/ -o s3://bucket/anon/  object storage (pip install 'veil[batch]')
  veil batch in/ -o out/ --engine ray --address HOST:6379
                                                    tasks on a Ray cluster (pip install 'veil[ray]')

A rerun with the same output skips files already done with the same settings,
retries failed ones and redoes those whose input or settings changed.
Exit codes: 0 all files done, 1 some files failed (listed in the summary), 2 bad input or option,
130 interrupted (finished files stay recorded).
"""


def build_parser() -> CommandParser:
    parser = CommandParser(
        "batch",
        description="Anonymize a folder, a manifest or an object-storage prefix, resumably.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "input",
        metavar="INPUT",
        help="folder (searched recursively), manifest (.txt/.csv of paths or URLs), or URL prefix",
    )
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
    options = build(BatchOptions, args, "batch", input=args.input)
    progress = Progress(args.quiet)
    try:
        summary = run_batch(options, progress)
    finally:
        progress.close()
    if not args.quiet:
        print(summary.text(), file=sys.stderr)
    return 1 if summary.failed else 0
