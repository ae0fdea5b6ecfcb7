"""Running a detector setting (veil's, or deface's for comparison) over a dataset.

Images go through the detector alone, at a low score floor so that AP sees the
whole precision-recall curve; the operating threshold is applied afterwards.
Videos go through the real frame loop (`Pipeline.iter_anonymized`: batching,
the temporal filter of the job's tracking options, anonymization), so what is
scored is exactly what a user's output would hide.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import itertools
import time
from dataclasses import dataclass, field

import numpy as np

from ..detections import Detections
from ..io import images as image_io
from ..io.video import VideoSource
from ..pipeline import JobOptions, Pipeline
from .datasets import Dataset
from .metrics import ImageResult

# AP needs detections below the operating threshold too; this is the floor.
AP_SCORE_FLOOR = 0.05

# deface's defaults (deface 1.5): threshold 0.2, native resolution, ellipse mask,
# mask_scale 1.3 (per side, as veil's mask_scale: boxes.grow_box).
DEFACE_THRESHOLD = 0.2
DEFACE_MASK_SCALE = 1.3


@dataclass
class Run:
    """What one system did on one dataset."""

    system: str
    threshold: float
    shape: str
    mask_scale: float
    results: list[ImageResult] = field(default_factory=list)
    frames: int = 0
    seconds: float = 0.0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def _labelled_frames(dataset: Dataset, limit: int | None):
    images = dataset.images[:limit] if limit else dataset.images
    for item in images:
        yield item, image_io.read_image(item.path).image


def run_veil(dataset: Dataset, options: JobOptions, limit: int | None = None) -> Run:
    """limit: at most this many images, or frames per video (quick checks)."""
    threshold = options.detector.threshold
    run = Run(
        f"veil {options.detector.quality}",
        threshold,
        options.anonymize.shape,
        options.anonymize.mask_scale,
    )
    if dataset.kind == "image":
        floor = dataclasses.replace(options.detector, threshold=min(threshold, AP_SCORE_FLOOR))
        pipeline = Pipeline(dataclasses.replace(options, detector=floor))
        for item, image in _labelled_frames(dataset, limit):
            start = time.perf_counter()
            dets = pipeline.detect([image])[0]
            run.seconds += time.perf_counter() - start
            run.frames += 1
            run.results.append(
                ImageResult(image.shape[:2], item.truth, dets.xyxy, dets.score, item.ignore)
            )
        return run
    pipeline = Pipeline(options)
    for video in dataset.videos:
        with VideoSource(video.path) as source:
            frames = source.frames()
            if limit:
                frames = itertools.takewhile(lambda f: f.index < limit, frames)
            start = time.perf_counter()
            for frame, dets in pipeline.iter_anonymized(
                frames, video.fps or float(source.info.fps)
            ):
                run.frames += 1
                _add_video_frame(run, video.frames, frame.index, frame.image.shape[:2], dets)
            run.seconds += time.perf_counter() - start
    return run


def _add_video_frame(
    run: Run, labels: dict[int, np.ndarray], index: int, shape, dets: Detections
) -> None:
    if index in labels:
        run.results.append(ImageResult(shape, labels[index], dets.xyxy, dets.score))


def _deface_model():
    try:
        from deface.centerface import CenterFace
    except ImportError as exc:  # pragma: no cover - deface is a dependency
        from ..errors import DetectorError

        raise DetectorError(
            "--compare deface needs the 'deface' package: pip install deface"
        ) from exc
    with contextlib.redirect_stdout(io.StringIO()):  # it prints its provider
        return CenterFace(in_shape=None, backend="auto")


def run_deface(dataset: Dataset, limit: int | None = None) -> Run:
    """deface at its defaults, on RGB frames as its own reader gives them."""
    from deface.deface import anonymize_frame

    model = _deface_model()
    run = Run("deface", DEFACE_THRESHOLD, "ellipse", DEFACE_MASK_SCALE)
    if dataset.kind == "image":
        for item, image in _labelled_frames(dataset, limit):
            rgb = np.ascontiguousarray(image[:, :, ::-1])
            start = time.perf_counter()
            dets, _ = model(rgb, threshold=AP_SCORE_FLOOR)
            run.seconds += time.perf_counter() - start
            run.frames += 1
            run.results.append(
                ImageResult(image.shape[:2], item.truth, dets[:, :4], dets[:, 4], item.ignore)
            )
        return run
    for video in dataset.videos:
        with VideoSource(video.path) as source:
            start = time.perf_counter()
            for frame in source.frames():
                if limit and frame.index >= limit:
                    break
                rgb = np.ascontiguousarray(frame.image[:, :, ::-1])
                dets, _ = model(rgb, threshold=DEFACE_THRESHOLD)
                anonymize_frame(
                    dets,
                    rgb,
                    mask_scale=DEFACE_MASK_SCALE,
                    replacewith="blur",
                    ellipse=True,
                    draw_scores=False,
                    replaceimg=None,
                    mosaicsize=20,
                )
                run.frames += 1
                found = Detections.from_array(dets) if len(dets) else Detections.empty()
                _add_video_frame(run, video.frames, frame.index, frame.image.shape[:2], found)
            run.seconds += time.perf_counter() - start
    return run
