"""Recall of veil's video scan against a full-resolution pass on every frame, and against deface.

    python benchmarks/recall.py [--quick]

Recall = labelled faces matched by a detection at IoU >= 0.5, over all labelled faces.

1. ytf: the labelled YouTube Faces clips through veil's video scan, deface's
   own detector on every frame, and veil at full resolution on every frame.
2. wider in 1080p: WIDER FACE photos (many faces under 32 px) placed at their
   own size in a 1920x1080 frame that pans 4 px per frame. This is where the
   scan can lose faces, so it is the measure of its trade-off: scan, full
   resolution every frame, and a plain cap of the detector input at the scan's
   coarse size.
3. wider and dlib photos: single images always run at full resolution; veil
   against deface's detector for completeness.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from veil.boxes import box_iou  # noqa: E402
from veil.detections import Detections  # noqa: E402
from veil.detectors import DetectorOptions  # noqa: E402
from veil.detectors.centerface import CenterFace  # noqa: E402
from veil.detectors.scan import KeyframeScanner, ScanPolicy  # noqa: E402

DATA = HERE.parent.parent / "shared" / "data"
THRESHOLD = DetectorOptions.threshold
IOU = 0.5
SCAN = "veil scan (default)"
FULL = "veil full resolution (--full-every 1)"


class Score:
    def __init__(self) -> None:
        self.hit = 0
        self.total = 0
        self.seconds = 0.0

    def add(self, truth: np.ndarray, found: Detections) -> None:
        truth = np.asarray(truth, np.float32).reshape(-1, 4)
        self.total += len(truth)
        if len(truth) and len(found):
            self.hit += int((box_iou(truth, found.xyxy).max(axis=1) >= IOU).sum())

    def __str__(self) -> str:
        return f"{self.hit}/{self.total} = {self.hit / max(self.total, 1):.3f}"


def deface_detector():
    from deface.centerface import CenterFace as DefaceCenterFace

    model = DefaceCenterFace(in_shape=None, backend="onnxrt")

    def detect(image: np.ndarray) -> Detections:
        dets, _ = model(np.ascontiguousarray(image[:, :, ::-1]), threshold=THRESHOLD)
        return Detections(dets[:, :4], score=dets[:, 4])

    return detect


def run_scan(scanner: KeyframeScanner, frames: list[np.ndarray]) -> list[Detections]:
    out: list[Detections] = []
    for i in range(0, len(frames), scanner.batch_size):
        out += scanner.detect(frames[i : i + scanner.batch_size])
    return out


def timed(score: Score, fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    score.seconds += time.perf_counter() - start
    return result


def infer_each(cf: CenterFace, frames: list[np.ndarray], max_size: int | None) -> list:
    """One network pass per frame at the given input cap (None = full resolution)."""
    return [cf.infer([f], max_size, THRESHOLD)[0] for f in frames]


def ytf(cf: CenterFace, deface, limit: int | None) -> None:
    import av

    labels = json.loads((DATA / "ytf" / "video_annotations.json").read_text())
    scores = {SCAN: Score(), FULL: Score(), "deface": Score()}
    for rel, info in list(labels.items())[:limit]:
        with av.open(str(DATA / "ytf" / rel)) as c:
            frames = [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]
        truth = {f["index"]: f["boxes"] for f in info["frames"]}
        scan = timed(scores[SCAN], run_scan, KeyframeScanner(cf.infer, THRESHOLD), frames)
        full = timed(scores[FULL], infer_each, cf, frames, None)
        ref = timed(scores["deface"], lambda fs: [deface(f) for f in fs], frames)
        for index, boxes in truth.items():
            if index < len(frames):
                scores[SCAN].add(boxes, scan[index])
                scores[FULL].add(boxes, full[index])
                scores["deface"].add(boxes, ref[index])
    print("\nytf clips (320x240 to 640x480; per-frame recall of the labelled subject)")
    for name, s in scores.items():
        print(f"  {name:38s} {s}   {s.seconds:6.1f} s")


def panning(image: np.ndarray, boxes: np.ndarray, n: int, step: int = 4):
    """Frames of a 1920x1080 view panning over the photo at its own size, and its whole boxes."""
    image = image[:1080]
    h, w = image.shape[:2]
    canvas_w = 1920
    pad_x = (canvas_w - w) // 2 + step * n
    frames, truths = [], []
    for i in range(n):
        frame = np.zeros((1080, canvas_w, 3), np.uint8)
        x0 = pad_x - step * n + step * i
        y0 = (1080 - h) // 2
        x1 = min(canvas_w, x0 + w)
        frame[y0 : y0 + h, x0:x1] = image[:, : x1 - x0]
        b = boxes + np.array([x0, y0, x0, y0], np.float32)
        keep = (b[:, 2] <= x1) & (b[:, 3] <= y0 + h)
        frames.append(frame)
        truths.append(b[keep])
    return frames, truths


def wider_1080p(cf: CenterFace, limit: int, n: int) -> None:
    labels = json.loads((DATA / "wider_dev" / "annotations.json").read_text())
    policy = ScanPolicy()
    scores = {SCAN: Score(), FULL: Score(), f"veil capped at {policy.coarse_size} px": Score()}
    for rel, boxes in sorted(labels.items())[:limit]:
        image = cv2.imread(str(DATA / "wider_dev" / rel))
        frames, truths = panning(image, np.asarray(boxes, np.float32).reshape(-1, 4), n)
        scan = timed(scores[SCAN], run_scan, KeyframeScanner(cf.infer, THRESHOLD, policy), frames)
        full = timed(scores[FULL], infer_each, cf, frames, None)
        cap = timed(
            scores[f"veil capped at {policy.coarse_size} px"],
            infer_each,
            cf,
            frames,
            policy.coarse_size,
        )
        for truth, a, b, c in zip(truths, scan, full, cap):
            scores[SCAN].add(truth, a)
            scores[FULL].add(truth, b)
            scores[f"veil capped at {policy.coarse_size} px"].add(truth, c)
    print(
        f"\nWIDER photos panning in 1920x1080 ({limit} photos x {n} frames; "
        "faces at their own size)"
    )
    for name, s in scores.items():
        print(f"  {name:38s} {s}   {s.seconds:6.1f} s")


def photos(cf: CenterFace, deface) -> None:
    print("\nphotos (single images: always full resolution)")
    for folder in ("wider_dev", "dlib_pascal_faces"):
        labels = json.loads((DATA / folder / "annotations.json").read_text())
        ours, theirs = Score(), Score()
        for rel, boxes in labels.items():
            image = cv2.imread(str(DATA / folder / rel))
            ours.add(boxes, cf.detect([image])[0])
            theirs.add(boxes, deface(image))
        print(f"  {folder:18s} veil {ours}   deface {theirs}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer clips and photos")
    args = parser.parse_args(argv)
    if not DATA.is_dir():
        print(f"{DATA} is not present; nothing to measure")
        return 1
    cf = CenterFace(DetectorOptions())
    deface = deface_detector()
    photos(cf, deface)
    ytf(cf, deface, 3 if args.quick else None)
    wider_1080p(cf, 4 if args.quick else 12, 16 if args.quick else 24)
    return 0


if __name__ == "__main__":
    sys.exit(main())
