"""Frames per second and peak memory of veil and deface on the same clips, plus the I/O floor.

    python benchmarks/speed.py            # 150-frame 720p and 1080p clips
    python benchmarks/speed.py --quick    # 48 frames, fewer veil variants
    python benchmarks/speed.py --repeat 3 # every row 3 times, interleaved; medians

Every run is a separate process started from scratch, veil's rows the `veil`
command with their flags (model loading included, as a user would see it);
fps = frames / wall seconds, peak memory = the process's maximum resident set
size (each command started by a small fresh interpreter, benchmarks/child.py, because
Linux counts a child's peak from its parent's). The floor is
PyAV decoding plus libx264 encoding with veil's encoder settings and nothing in
between. Wall time depends on whatever else runs on the machine: compare rows
of one run only; the last lines give veil's default against deface. On a shared machine,
--repeat N runs the whole table N times over, row after row, so a busy spell hits every row
alike; the table then gives each row's median fps and CPU time and its highest peak memory,
and the last lines the ratio of the medians and the ratio within each round.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import av

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from child import measured  # noqa: E402

from clips import build_clips  # noqa: E402

DEFAULT = "veil (default: --quality balanced, keyframe scan)"
DEFACE = "deface 1.5 (defaults)"
ROOT = HERE.parent

FLOOR = """
import sys, av
from veil.io.video import EncoderOptions
opts = EncoderOptions()
with av.open(sys.argv[1]) as src, av.open(sys.argv[2], "w") as dst:
    vin = src.streams.video[0]
    vin.thread_type = "AUTO"
    out = dst.add_stream(opts.codec, rate=vin.average_rate)
    out.width, out.height, out.pix_fmt = vin.width, vin.height, "yuv420p"
    out.options = {"crf": str(opts.crf), "preset": opts.preset}
    for frame in src.decode(vin):
        frame.pts = None
        for packet in out.encode(frame):
            dst.mux(packet)
    for packet in out.encode(None):
        dst.mux(packet)
"""


def measure(cmd: list[str], frames: int, output: Path) -> dict[str, float | str]:
    """Run one command; fps, peak RSS (MiB) and output size (MiB)."""
    run = measured(cmd)
    if run.returncode != 0 or not output.is_file():
        return {"error": (run.stderr.strip().splitlines() or ["failed"])[-1][:100]}
    return {
        "fps": frames / run.seconds,
        "seconds": run.seconds,
        "cpu_s": run.cpu_s,
        "rss_mib": run.rss_mib,
        "size_mib": output.stat().st_size / 2**20,
    }


def summary(rounds: list[dict]) -> dict:
    """One row from its rounds: median fps and CPU time, highest peak memory; the first error
    if every round failed."""
    ok = [r for r in rounds if "error" not in r]
    if not ok:
        return rounds[0]
    return {
        "fps": statistics.median(r["fps"] for r in ok),
        "cpu_s": statistics.median(r["cpu_s"] for r in ok),
        "rss_mib": max(r["rss_mib"] for r in ok),
        "size_mib": ok[-1]["size_mib"],
    }


def runs(clip: Path, out: Path, quick: bool) -> list[tuple[str, list[str], Path]]:
    py = sys.executable
    table = [
        (
            "floor: decode + encode",
            [py, "-c", FLOOR, str(clip), str(out / "floor.mp4")],
            out / "floor.mp4",
        )
    ]
    variants = [
        (DEFAULT, []),
        ("veil --full-every 1 (full resolution on every frame)", ["--full-every", "1"]),
    ]
    if not quick:
        variants += [(f"veil --quality {q}", ["--quality", q]) for q in ("fast", "max")]
    for i, (name, flags) in enumerate(variants):
        target = out / f"veil{i}.mp4"
        command = [py, "-m", "veil", str(clip), "-o", str(target), "--overwrite", "-q", *flags]
        table.append((name, command, target))
    # deface's command, on PATH or beside this Python (a virtual environment not activated)
    deface = shutil.which("deface") or shutil.which("deface", path=str(Path(py).parent))
    if deface:
        table.append(
            (
                DEFACE,
                [deface, str(clip), "-o", str(out / "deface.mp4")],
                out / "deface.mp4",
            )
        )
    return table


def prepare(folder: Path, frames: int) -> dict[str, tuple[Path, int]]:
    """Build (or reuse) the clips; name -> (path, frame count)."""
    counts = {}
    for name, path in build_clips(folder, frames).items():
        with av.open(str(path)) as clip:
            counts[name] = (path, clip.streams.video[0].frames)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="48-frame clips and only the default variants"
    )
    parser.add_argument(
        "--frames", type=int, default=None, help="frames per clip (default 150, quick 48)"
    )
    parser.add_argument(
        "--clips", type=Path, default=HERE / ".clips", help="where the built clips are cached"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="rounds of the whole table (medians are shown)"
    )
    args = parser.parse_args(argv)
    n = args.frames or (48 if args.quick else 150)
    clips = prepare(args.clips, n)
    print(
        f"cpu cores: {os.cpu_count()}; load average at start: {os.getloadavg()[0]:.1f}; "
        f"{n} frames per clip"
    )
    header = "| clip | run | fps | CPU s | peak RSS MiB | output MiB |"
    print("\n" + header + "\n|---|---|---:|---:|---:|---:|")
    ratios = []
    for name, (clip, frames) in clips.items():
        rounds: dict[str, list[dict]] = {}
        with tempfile.TemporaryDirectory(prefix="veil-bench-") as tmp:
            table = runs(clip, Path(tmp), args.quick)
            for _ in range(args.repeat):
                for label, cmd, target in table:
                    rounds.setdefault(label, []).append(measure(cmd, frames, target))
        results = {label: summary(runs_) for label, runs_ in rounds.items()}
        for label, r in results.items():
            if "error" in r:
                print(f"| {name} | {label} | failed: {r['error']} | | | |")
                continue
            print(
                f"| {name} | {label} | {r['fps']:.2f} | {r['cpu_s']:.1f} | "
                f"{r['rss_mib']:.0f} | {r['size_mib']:.1f} |"
            )
        veil, deface = (results.get(label, {}) for label in (DEFAULT, DEFACE))
        if "fps" in veil and "fps" in deface:
            line = (
                f"{name}: veil's default {veil['fps'] / deface['fps']:.2f}x deface's fps, "
                f"on {deface['cpu_s'] / veil['cpu_s']:.2f}x less CPU time"
            )
            if args.repeat > 1:
                each = [
                    f"{v['fps'] / d['fps']:.2f}x"
                    for v, d in zip(rounds[DEFAULT], rounds[DEFACE])
                    if "fps" in v and "fps" in d
                ]
                line += f" (medians of {args.repeat} rounds; fps ratio in each: {' '.join(each)})"
            ratios.append(line)
    print("", *ratios, f"load average at end: {os.getloadavg()[0]:.1f}", sep="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
