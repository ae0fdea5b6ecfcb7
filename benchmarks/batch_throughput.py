"""Throughput of `veil batch`: 1 vs 2 local workers, and the local pool vs Ray on this machine.

Builds a small archive from scikit-image's photos (images and short clips), runs each engine once
into a fresh output folder and prints the summary figures. Ray is started before timing, as an
existing cluster would be; worker start-up and model loading are part of every figure.

    PYTHONPATH=src python benchmarks/batch_throughput.py [--images 40] [--videos 4]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import skimage.data

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import panning_frames, write_video  # noqa: E402
from veil.batch import BatchOptions, run_batch  # noqa: E402
from veil.pipeline import JobOptions  # noqa: E402


def build(root: Path, images: int, videos: int) -> None:
    photo = np.ascontiguousarray(skimage.data.astronaut()[:, :, ::-1])
    for i in range(images):
        path = root / f"part{i % 4}" / f"img{i:03d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), np.roll(photo, i * 9, axis=1))
    small = cv2.resize(photo, (320, 320), interpolation=cv2.INTER_AREA)
    for i in range(videos):
        path = root / "clips" / f"clip{i}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_video(
            path,
            panning_frames(np.roll(small, i * 20, axis=1), 45, step=2),
            fps=15,
            audio_seconds=3.0,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "in"
        build(source, args.images, args.videos)
        runs = [("local, 1 worker", "local", 1), ("local, 2 workers", "local", 2)]
        if not args.no_ray:
            import ray

            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            runs.append(("ray, 2 CPUs", "ray", 2))
        print(f"{args.images} images (512x512) + {args.videos} clips (320x320, 45 frames)")
        print(f"{'run':<18} {'seconds':>8} {'files/s':>8} {'frames/s':>9}")
        for name, engine, workers in runs:
            options = BatchOptions(
                str(source),
                str(Path(tmp) / f"out-{engine}-{workers}"),
                JobOptions(),
                workers=workers,
                engine=engine,
            )
            summary = run_batch(options)
            assert summary.failed == 0, summary.failures
            print(
                f"{name:<18} {summary.seconds:>8.1f} {summary.files_per_second:>8.2f} "
                f"{summary.frames_per_second:>9.1f}"
            )


if __name__ == "__main__":
    main()
