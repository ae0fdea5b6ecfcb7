"""Paired speed of the detection presets and deface's default on the same images.

On a shared, busy machine, sequential runs see different loads; here every
image is run by each system in turn, so load changes hit all of them alike.
Prints the total seconds, frames per second, and each system's time relative
to deface.

    python benchmarks/preset_speed.py FOLDER [FOLDER...] [--threads N]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import time
from pathlib import Path

import numpy as np

from veil.detectors import DetectorOptions, create_detector
from veil.io.images import read_image


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    from deface.centerface import CenterFace

    with contextlib.redirect_stdout(io.StringIO()):
        deface = CenterFace(in_shape=None, backend="auto")
    systems = {
        q: create_detector(DetectorOptions(quality=q, threads=args.threads))
        for q in ("fast", "balanced", "max")
    }
    images = []
    for folder in args.folders:
        labels = json.loads((folder / "annotations.json").read_text())
        images += [read_image(folder / key).image for key in sorted(labels)]
    seconds = {name: 0.0 for name in [*systems, "deface"]}
    for i, image in enumerate([images[0], *images]):
        warm = i == 0  # the first pass warms every system up and is not counted
        for name, detector in systems.items():
            start = time.perf_counter()
            detector.detect([image])
            seconds[name] += 0 if warm else time.perf_counter() - start
        rgb = np.ascontiguousarray(image[:, :, ::-1])
        start = time.perf_counter()
        deface(rgb, threshold=0.2)
        seconds["deface"] += 0 if warm else time.perf_counter() - start
    print(f"{len(images)} images, threads={args.threads or 'all'}")
    print("| system | seconds | fps | time vs deface |")
    print("|---|---|---|---|")
    for name, s in seconds.items():
        print(f"| {name} | {s:.1f} | {len(images) / s:.2f} | {s / seconds['deface']:.2f}x |")


if __name__ == "__main__":
    main()
