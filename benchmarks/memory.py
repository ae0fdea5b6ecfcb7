"""Peak memory of a whole `veil` run on a 1080p clip (and 720p), as a user would start it.

    python benchmarks/memory.py [--frames 150] [-- EXTRA VEIL ARGS]

Each run is a fresh `python -m veil` process; its peak resident set size is the kernel's
ru_maxrss for that process alone (benchmarks/child.py), the same figure as
`/usr/bin/time -v`'s "Maximum resident set size". The clips are benchmarks/clips.py's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from child import measured  # noqa: E402

from clips import build_clips  # noqa: E402


def peak_rss(clip: Path, extra: list[str]) -> dict[str, float]:
    """Peak RSS (MiB), CPU seconds and wall seconds of one veil run on clip."""
    with tempfile.TemporaryDirectory() as tmp:
        run = measured([sys.executable, "-m", "veil", str(clip), "-o", f"{tmp}/out.mp4", *extra])
    if run.returncode != 0:
        raise SystemExit(f"veil failed on {clip}: {run.stderr.strip()[-300:]}")
    return {"rss_mib": run.rss_mib, "cpu_s": run.cpu_s, "wall_s": run.seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--clips", type=Path, default=HERE / ".clips")
    parser.add_argument("extra", nargs="*", help="more veil arguments (after --)")
    args = parser.parse_args(argv)
    clips = build_clips(args.clips, args.frames)
    print("| clip | peak RSS MiB | CPU s | wall s |\n|---|---:|---:|---:|")
    for name in ("1080p", "720p"):
        r = peak_rss(clips[name], args.extra)
        print(f"| {name} | {r['rss_mib']:.0f} | {r['cpu_s']:.1f} | {r['wall_s']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
