"""Paired cost of the detection presets and deface's default on the same images.

On a shared, busy machine, sequential runs see different loads; here every
image is run by each system in turn, so load changes hit all of them alike.
Prints per system the wall seconds, the CPU seconds (all threads of this
process during its calls), frames per second, each system's time relative to
deface, and the network input pixels per image (padded to the network's
alignment): a machine-independent measure of what a policy spends.
"old default" is one CenterFace pass at native resolution, the balanced preset
before it looked closer at small faces.

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
from veil.detectors.centerface import input_geometry
from veil.io.images import read_image


class Counted:
    """A detector whose network calls add their input pixels to a counter."""

    def __init__(self, detector) -> None:
        self.detector, self.pixels = detector, 0
        net = detector.net
        infer = net.infer

        def counting(frames, max_size, threshold, *rest):
            _, _, _, ph, pw = input_geometry(*frames[0].shape[:2], max_size)
            self.pixels += ph * pw * len(frames)
            return infer(frames, max_size, threshold, *rest)

        net.infer = counting
        if getattr(detector, "policy", None) is not None:
            detector.policy._infer = counting

    def detect(self, frames):
        return self.detector.detect(frames)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    from deface.centerface import CenterFace

    with contextlib.redirect_stdout(io.StringIO()):
        deface = CenterFace(in_shape=None, backend="auto")
    settings = {
        "fast": DetectorOptions(quality="fast", threads=args.threads),
        "old default": DetectorOptions(max_size=1 << 20, threads=args.threads),
        "balanced (default)": DetectorOptions(threads=args.threads),
        "max": DetectorOptions(quality="max", threads=args.threads),
    }
    systems = {name: Counted(create_detector(o)) for name, o in settings.items()}
    images = []
    for folder in args.folders:
        labels = json.loads((folder / "annotations.json").read_text())
        images += [read_image(folder / key).image for key in sorted(labels)]
    names = [*systems, "deface"]
    wall, cpu = dict.fromkeys(names, 0.0), dict.fromkeys(names, 0.0)
    # deface reads each image once at native size, padded like veil's network input.
    deface_pixels = sum(np.prod(input_geometry(*im.shape[:2], None)[3:]) for im in images)
    for i, image in enumerate([images[0], *images]):
        warm = i == 0  # the first pass warms every system up and is not counted
        if i == 1:
            for counted in systems.values():
                counted.pixels = 0
        rgb = np.ascontiguousarray(image[:, :, ::-1])
        for name in names:
            start, start_cpu = time.perf_counter(), time.process_time()
            if name == "deface":
                deface(rgb, threshold=0.2)
            else:
                systems[name].detect([image])
            if not warm:
                wall[name] += time.perf_counter() - start
                cpu[name] += time.process_time() - start_cpu
    n = len(images)
    print(f"{n} images, threads={args.threads or 'all'}")
    print("| system | wall s | CPU s | fps | time vs deface | CPU vs deface | input MP/image |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        pixels = systems[name].pixels if name in systems else deface_pixels
        mp = f"{pixels / n / 1e6:.2f}"
        print(
            f"| {name} | {wall[name]:.1f} | {cpu[name]:.1f} | {n / wall[name]:.2f} | "
            f"{wall[name] / wall['deface']:.2f}x | {cpu[name] / cpu['deface']:.2f}x | {mp} |"
        )


if __name__ == "__main__":
    main()
