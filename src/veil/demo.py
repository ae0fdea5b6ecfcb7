"""`veil demo`: anonymize the bundled photo, a quick check that everything works."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .options import CommandParser, build, option
from .pipeline import JobOptions, Pipeline

SAMPLE = Path(__file__).parent / "assets" / "astronaut.jpg"  # NASA portrait, public domain


@dataclass(frozen=True)
class DemoOptions:
    """Where the demo writes its result."""

    output: str = option(
        "astronaut_anonymized.jpg",
        "-o",
        "--output",
        group="output",
        commands=("demo",),
        help="where to write (default %(default)s)",
    )


def main(argv: Sequence[str]) -> int:
    """Anonymize the bundled photo (NASA astronaut portrait, public domain)."""
    args = CommandParser("demo", description=main.__doc__).parse_args(list(argv))
    options = build(JobOptions, args, "demo", overwrite=True)
    output = Path(build(DemoOptions, args, "demo").output)
    result = Pipeline(options).process(SAMPLE, output)
    if not args.quiet:
        print(f"{result.boxes} face(s) found; anonymized copy written to {result.output}")
    return 0
