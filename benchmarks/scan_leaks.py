"""Faces left visible on panning HD video: the default keyframe scan, full resolution on every
frame, and deface.

    python benchmarks/scan_leaks.py [--photos 12] [--frames 32] [--steps 4,24]

The scan (detectors/scan.py) decides which pixels get a full-resolution look,
so it is judged where that matters most: WIDER FACE photos (crowds, many faces
under 32 px) placed at their own size in a 1280x720 or 1920x1080 frame that
pans sideways by STEP pixels a frame, encoded to H.264 and run through the whole
pipeline (decode, detect, track with gap filling, hide, encode). A slow pan
(4 px) and a fast one (24 px: a small face crosses several times its size
between two keyframes) are both measured.

A labelled face is leaked in a frame when less than 90% of its box lies under
the final mask (veil's default ellipse, mask scale 1.3; deface's ellipse in its
own scaled box at its defaults, which grows each side by 30% as veil's 1.3 does,
so both are scored at 1.3). Columns: leaked face-frames out of all
labelled face-frames, per-frame detection recall at IoU 0.5 of the boxes the
pipeline hid, and end-to-end fps. deface runs its own detector on every
decoded frame (no hiding, no encoding, so its fps is an upper bound).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from tracking_leaks import deface_boxes  # noqa: E402
from veil.boxes import box_iou  # noqa: E402
from veil.detectors import DetectorOptions  # noqa: E402
from veil.evaluation.pan import pan_clip  # noqa: E402
from veil.hide.masks import coverage  # noqa: E402
from veil.pipeline import JobOptions, Pipeline  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "wider_dev"
SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}
COVERED = 0.9
FPS = 30


class Tally:
    def __init__(self) -> None:
        self.faces = self.leaked = self.found = self.frames = 0
        self.seconds = 0.0

    def add(
        self,
        truths: list[np.ndarray],
        hidden: list[np.ndarray],
        shape: tuple[int, int],
        mask_scale: float,
    ) -> None:
        for truth, boxes in zip(truths, hidden):
            self.frames += 1
            if not len(truth):
                continue
            self.faces += len(truth)
            if len(boxes):
                self.found += int((box_iou(truth, boxes).max(axis=1) >= 0.5).sum())
            mask = coverage(shape, boxes, "ellipse", mask_scale)
            for x1, y1, x2, y2 in np.round(truth).astype(int):
                region = mask[max(y1, 0) : y2, max(x1, 0) : x2]
                if region.size and region.mean() < COVERED:
                    self.leaked += 1

    def row(self) -> str:
        faces, fps = max(self.faces, 1), self.frames / max(self.seconds, 1e-9)
        return (
            f"{self.leaked:>5}/{self.faces:<6} {100 * self.leaked / faces:5.2f}%"
            f"  recall {self.found / faces:.3f}  {fps:5.1f} fps"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--photos", type=int, default=12)
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--steps", default="4,24", help="pan speeds in pixels per frame")
    parser.add_argument("--sizes", default="720p,1080p")
    parser.add_argument("--no-deface", action="store_true")
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"{DATA} is not present; nothing to measure")
        return 1
    labels = sorted(json.loads((DATA / "annotations.json").read_text()).items())[: args.photos]
    variants = {
        f"veil default (scan, every {DetectorOptions.full_every})": DetectorOptions.full_every,
        "veil --full-every 1": 1,
    }
    mask_scale = JobOptions().anonymize.mask_scale
    pipelines = {
        name: Pipeline(JobOptions(detector=DetectorOptions(full_every=every), overwrite=True))
        for name, every in variants.items()
    }
    for pipeline in pipelines.values():
        _ = pipeline.detector  # loaded before timing starts
    deface = None
    if not args.no_deface:
        from deface.centerface import CenterFace

        deface = CenterFace(in_shape=None, backend="auto")
    print(
        f"{args.photos} WIDER photos x {args.frames} frames; "
        "leaked face-frames (< 90% under the mask)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for size_name in args.sizes.split(","):
            size = SIZES[size_name]
            for step in (int(s) for s in args.steps.split(",")):
                tallies = {name: Tally() for name in [*variants, *(["deface"] if deface else [])]}
                for k, (rel, boxes) in enumerate(labels):
                    image = cv2.imread(str(DATA / rel))
                    clip = Path(tmp) / f"pan_{size_name}_{step}_{k}.mp4"
                    truths = pan_clip(
                        image,
                        np.asarray(boxes, np.float32).reshape(-1, 4),
                        clip,
                        size=size,
                        frames=args.frames,
                        step=step,
                        fps=FPS,
                    )
                    shape = (size[1], size[0])
                    for name, pipeline in pipelines.items():
                        start = time.perf_counter()
                        result = pipeline.process(clip, Path(tmp) / f"out_{k}.mp4")
                        tallies[name].seconds += time.perf_counter() - start
                        tallies[name].add(
                            truths, [d.xyxy for d in result.per_frame], shape, mask_scale
                        )
                    if deface:
                        hidden, spent = deface_boxes(deface, clip)
                        tallies["deface"].seconds += spent
                        tallies["deface"].add(truths, hidden, shape, mask_scale)
                print(f"\n{size_name}, pan {step} px/frame")
                for name, tally in tallies.items():
                    print(f"  {name:32s} {tally.row()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
