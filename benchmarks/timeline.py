"""When a `veil` run does what: the detection thread's share of the time, and the idle ends.

    python benchmarks/timeline.py [--frames 150] [--size 720p|1080p]

One fresh process per clip (benchmarks/clips.py) runs the `veil` command on it, with the
keyframe scan's batches and the network's passes timed. It prints, in seconds since the
process started, when the detector began loading, when the first batch was detected and
when the last one was, and the end; how busy the detection thread was in between (it is
the critical path of a file job: the loop hides and encodes one batch while the next is
detected); how its network time splits between keyframes, the coarse passes and crops; and
how many of the cores the whole process kept busy in the steady part. A run whose detection
thread is busy all the time with the cores full gets faster only with less work per frame.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))


def _since_start() -> tuple[float, float]:
    """(wall seconds since this process started, CPU seconds it has used)."""
    stat = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    started = float(stat[19]) / tick  # field 22, after pid and comm
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return uptime - started, (int(stat[11]) + int(stat[12])) / tick


def traced_run(clip: Path) -> None:
    """Run `veil CLIP` in this process with the scan and the network timed; print the report."""
    from veil import cli
    from veil.detectors import centerface, scan

    marks: dict[str, tuple[float, float]] = {}
    busy = [0.0, 0]
    network: dict[str, float] = defaultdict(float)
    size: list[tuple[int, int]] = []

    def mark(name: str) -> None:
        marks.setdefault(name, _since_start())

    load, infer = centerface.CenterFace.__init__, centerface.CenterFace.infer
    detect = scan.KeyframeScanner.detect

    def timed_load(self, *args, **kwargs):
        mark("detector loading")
        load(self, *args, **kwargs)

    def timed_detect(self, frames):
        size[:] = [frames[-1].shape[:2]]
        mark("first batch started")
        start = time.perf_counter()
        found = detect(self, frames)
        busy[0] += time.perf_counter() - start
        busy[1] += 1
        mark("first batch detected")
        marks["last batch detected"] = _since_start()
        return found

    def timed_infer(self, frames, max_size, *args, **kwargs):
        start = time.perf_counter()
        found = infer(self, frames, max_size, *args, **kwargs)
        kind = "coarse" if max_size else "keyframe" if [frames[0].shape[:2]] == size else "crop"
        network[kind] += time.perf_counter() - start
        return found

    centerface.CenterFace.__init__ = timed_load
    scan.KeyframeScanner.detect = timed_detect
    centerface.CenterFace.infer = timed_infer
    with tempfile.TemporaryDirectory() as tmp:
        code = cli.main([str(clip), "-o", f"{tmp}/out.mp4", "--quiet"])
    end = _since_start()
    if code != 0 or "first batch detected" not in marks:
        raise SystemExit(f"veil failed or ran no keyframe scan on {clip} (exit {code})")
    first, cpu_first = marks["first batch detected"]
    last, cpu_last = marks["last batch detected"]
    for name, (wall, cpu) in [*marks.items(), ("end", end)]:
        print(f"  {wall:6.2f} s  {name} (CPU {cpu:.2f} s)")
    detecting = last - marks["first batch started"][0]
    print(
        f"  detection thread: {busy[0]:.2f} s in {busy[1]} batches, busy "
        f"{100 * busy[0] / detecting:.0f}% from the first batch's start to the last one's end"
    )
    total = sum(network.values()) or 1.0
    print(
        "  network passes: "
        + ", ".join(f"{k} {v:.2f} s ({100 * v / total:.0f}%)" for k, v in network.items())
    )
    cores = (cpu_last - cpu_first) / (last - first)
    print(
        f"  cores busy between the first and the last batch: {cores:.2f}; "
        f"after the last batch: {end[0] - last:.2f} s"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--size", choices=("720p", "1080p"), action="append")
    parser.add_argument("--clips", type=Path, default=HERE / ".clips")
    parser.add_argument("--trace", type=Path, help=argparse.SUPPRESS)  # the child's job
    args = parser.parse_args(argv)
    if args.trace:
        traced_run(args.trace)
        return 0
    from clips import build_clips

    clips = build_clips(args.clips, args.frames)
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    for name in args.size or ("720p", "1080p"):
        print(f"\n{name} ({clips[name].name}), veil defaults:")
        sys.stdout.flush()
        subprocess.run([sys.executable, __file__, "--trace", str(clips[name])], check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
