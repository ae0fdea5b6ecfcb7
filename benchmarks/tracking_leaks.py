"""Leak frames per clip with and without tracking, against deface, on labelled video clips.

A labelled face is covered when at least 90% of its box lies under the
anonymization mask (veil.hide.masks.coverage with the job's shape and
mask_scale); a frame with any uncovered labelled face is a leak frame.

deface is measured with its own detector call and box scaling at its default
settings (threshold 0.2, mask_scale 1.3, ellipse); its mask is the ellipse
inside its scaled box, i.e. coverage with mask_scale 1.0 on deface's boxes.

    python benchmarks/tracking_leaks.py [--data ../shared/data/ytf] [--modes none,online,both]

fps is end to end (decode, detect, track, hide, encode) on this machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from veil.hide.masks import coverage  # noqa: E402
from veil.io.video import VideoSource  # noqa: E402
from veil.pipeline import JobOptions, Pipeline  # noqa: E402
from veil.tracking import TrackingOptions  # noqa: E402

COVERED = 0.9


def leak_frames(labels: dict, boxes_per_frame: list[np.ndarray], frame_shape: tuple[int, int], shape: str,
                mask_scale: float) -> int:
    leaks = 0
    for entry in labels["frames"]:
        mask = coverage(frame_shape, boxes_per_frame[entry["index"]], shape, mask_scale)
        for x1, y1, x2, y2 in np.round(np.asarray(entry["boxes"], float)).astype(int).reshape(-1, 4):
            region = mask[max(y1, 0) : y2, max(x1, 0) : x2]
            if region.size and region.mean() < COVERED:
                leaks += 1
                break
    return leaks


def run_veil(clip: Path, mode: str, out_dir: Path) -> tuple[list[np.ndarray], float, int]:
    options = JobOptions(tracking=TrackingOptions(mode=mode), overwrite=True)
    result = Pipeline(options).process(clip, out_dir / f"{clip.stem}_{mode}.mp4")
    return [d.xyxy for d in result.per_frame], result.fps, sum(len(d) for d in result.per_frame)


def run_deface(clip: Path) -> tuple[list[np.ndarray], float]:
    from deface.centerface import CenterFace
    from deface.deface import scale_bb

    detector = CenterFace(in_shape=None, backend="auto")
    boxes, start = [], time.perf_counter()
    with VideoSource(clip) as source:
        for frame in source.frames():
            dets, _ = detector(np.ascontiguousarray(frame.image[:, :, ::-1]), threshold=0.2)
            scaled = [scale_bb(*d[:4].astype(int), 1.3) for d in dets]
            boxes.append(np.asarray(scaled, np.float32).reshape(-1, 4))
    return boxes, len(boxes) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "ytf")
    parser.add_argument("--modes", default="none,online,both")
    parser.add_argument("--no-deface", action="store_true")
    args = parser.parse_args()
    modes = args.modes.split(",")
    annotations = json.loads((args.data / "video_annotations.json").read_text())
    columns = [*modes] + ([] if args.no_deface else ["deface"])
    totals = {c: 0 for c in columns}
    fps: dict[str, list[float]] = {c: [] for c in columns}
    print(f"{'clip':<28}{'frames':>7}" + "".join(f"{c + ' leaks':>14}" for c in columns))
    labelled = 0
    with tempfile.TemporaryDirectory() as tmp:
        for rel, labels in annotations.items():
            clip = args.data / rel
            shape = (labels["height"], labels["width"])
            row = {}
            for mode in modes:
                boxes, clip_fps, _ = run_veil(clip, mode, Path(tmp))
                row[mode] = leak_frames(labels, boxes, shape, "ellipse", 1.3)
                fps[mode].append(clip_fps)
            if not args.no_deface:
                boxes, clip_fps = run_deface(clip)
                row["deface"] = leak_frames(labels, boxes, shape, "ellipse", 1.0)
                fps["deface"].append(clip_fps)
            labelled += len(labels["frames"])
            for c in columns:
                totals[c] += row[c]
            print(f"{clip.stem:<28}{len(labels['frames']):>7}" + "".join(f"{row[c]:>14}" for c in columns), flush=True)
    print(f"{'total':<28}{labelled:>7}" + "".join(f"{totals[c]:>14}" for c in columns))
    print(f"{'mean fps':<35}" + "".join(f"{np.mean(fps[c]):>14.1f}" for c in columns))
    print("veil fps: decode+detect+track+hide+encode; deface fps: detection and box scaling only (no hide, no I/O "
          "encode), so it is an upper bound for deface")


if __name__ == "__main__":
    main()
