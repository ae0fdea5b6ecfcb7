"""Wires the rooms together: sources -> detectors -> tracking -> anonymize -> sinks.

Video runs in three threads joined by bounded queues: decoding, detection plus
anonymization (this thread), and encoding. PyAV and onnxruntime release the GIL,
so the three overlap on a multi-core machine while memory stays bounded by the
queue sizes and the temporal filter's look-ahead.

Fail closed: a frame is written only after its detections were computed and
applied. Any failure aborts the output file (the partial file is deleted), so
an un-anonymized frame never reaches the disk.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from . import hide as anon
from .detections import Detections
from .detectors import Detector, DetectorOptions, create_detector
from .errors import InputError, ProcessingError, VeilError
from .filters import DetectionFilter, FilterOptions
from .frame import Frame
from .io import images as image_io
from .io import video as video_io
from .io.export import DataExport
from .io.paths import DEFAULT_SUFFIX, collect_inputs, media_kind, plan_outputs, reserve
from .tracking import TrackingOptions, create_filter, detection_threshold
from .tracking.review import ReviewReport, review_folder

ProgressCallback = Callable[[str, int, "int | None"], None]


class Cancelled(VeilError):
    """The job was cancelled by the user; its partial output was removed."""

    exit_code = 130


@dataclass(frozen=True)
class JobOptions:
    """Everything that decides what one anonymization job does."""

    detector: DetectorOptions = DetectorOptions()
    anonymize: anon.AnonymizeOptions = anon.AnonymizeOptions()
    encoder: video_io.EncoderOptions = video_io.EncoderOptions()
    tracking: TrackingOptions = TrackingOptions()
    filters: FilterOptions = FilterOptions()
    keep_metadata: bool = False
    overwrite: bool = False
    # Largest picture decoded, in pixels (all pages of a multi-page image together); checked
    # before decoding, so a small file that declares a huge picture is refused, not tried.
    max_pixels: int = image_io.DEFAULT_MAX_PIXELS
    suffix: str = DEFAULT_SUFFIX
    recursive: bool = False
    export_format: str | None = None
    review: bool = False
    batch_size: int = 0  # frames per detector call; 0 = what the detector prefers
    queue_size: int = 8


@dataclass
class JobResult:
    """What one input produced."""

    source: Path
    output: Path | None
    kind: str
    frames: int = 0
    boxes: int = 0
    seconds: float = 0.0
    export: Path | None = None
    review: Path | None = None
    per_frame: list[Detections] = field(default_factory=list, repr=False)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


_END = object()


class Pipeline:
    """One configured anonymizer; reuse it for many inputs (the detector loads once)."""

    def __init__(
        self,
        options: JobOptions = JobOptions(),
        detector: Detector | None = None,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        self.options = options
        self._detector = detector
        self.progress = progress
        self.cancel = cancel or threading.Event()
        self._filter = DetectionFilter(options.filters)

    @property
    def detector(self) -> Detector:
        if self._detector is None:
            # Trackers continue faces from detections under the threshold, so ask for those too.
            wanted = detection_threshold(self.options.tracking, self.options.detector.threshold)
            self._detector = create_detector(replace(self.options.detector, threshold=wanted))
        return self._detector

    # -- single frames -------------------------------------------------------------------
    def detect(
        self,
        images: Sequence[np.ndarray],
        keep_weak: bool = False,
        detect: Callable[[list[np.ndarray]], list[Detections]] | None = None,
    ) -> list[Detections]:
        """Detections per image at the threshold; keep_weak also returns those under it.

        detect replaces the detector's own call (a per-stream scanner, see detectors/scan.py).
        """
        try:
            found = (detect or self.detector.detect)(list(images))
            found = [self._filter(image, dets) for image, dets in zip(images, found)]
        except VeilError:
            raise
        except Exception as exc:
            raise ProcessingError(
                f"face detection failed ({type(exc).__name__}: {exc}); nothing was written"
            ) from exc
        if keep_weak:
            return found
        return [d[d.score >= self.options.detector.threshold] for d in found]

    def anonymize_image(self, image: np.ndarray) -> tuple[np.ndarray, Detections]:
        """Pixels in, anonymized pixels and the detections out (no files)."""
        dets = self.detect([image])[0]
        return anon.apply(image, dets, self.options.anonymize), dets

    # -- files ---------------------------------------------------------------------------
    def plan(
        self, inputs: Sequence[str | Path], output: str | Path | None = None
    ) -> list[tuple[Path, Path]]:
        """(source, target) for every input file, following the output naming rules."""
        items = collect_inputs(
            inputs,
            self.options.recursive,
            suffix=self.options.suffix,
            exclude=Path(output) if output is not None else None,
        )
        many = len(items) > 1 or any(Path(p).is_dir() for p in inputs)
        return plan_outputs(
            items,
            output,
            many=many,
            suffix=self.options.suffix,
            overwrite=self.options.overwrite,
        )

    def run(
        self, inputs: Sequence[str | Path], output: str | Path | None = None
    ) -> list[JobResult]:
        """Anonymize every input (files or folders); stops at the first failure."""
        return [self.process(source, target) for source, target in self.plan(inputs, output)]

    def process(self, source: Path, target: Path) -> JobResult:
        kind = media_kind(source)
        if kind == "image":
            return self.process_image(source, target)
        return self.process_video(source, target)

    def _export_for(self, target: Path) -> DataExport | None:
        fmt = self.options.export_format
        return DataExport(target.with_suffix(f".{fmt}"), fmt) if fmt else None

    def _review_for(self, source: Path, target: Path) -> ReviewReport | None:
        if not self.options.review:
            return None
        return ReviewReport(
            review_folder(target),
            self.options.detector.threshold,
            self.options.anonymize.mask_scale,
            source,
            target,
        )

    def process_image(self, source: Path, target: Path) -> JobResult:
        """Anonymize an image file (every page or frame of it); target may become a free name."""
        start = time.perf_counter()
        per_frame: list[Detections] = []
        with (
            image_io.ImageSource(
                source,
                max_pixels=self.options.max_pixels,
                keep_metadata=self.options.keep_metadata,
            ) as src,
            reserve(target, overwrite=self.options.overwrite) as slot,
        ):
            export = self._export_for(slot.target)
            review = self._review_for(source, slot.target)
            pictures = self._anonymized_pictures(src, per_frame, export, review)
            image_io.save_pictures(pictures, slot, source=src)
        if export:
            export.write()
        if review:
            review.write()
        if self.progress:
            self.progress(str(source), len(per_frame), len(per_frame))
        return JobResult(
            Path(source),
            slot.target,
            "image",
            len(per_frame),
            sum(len(d) for d in per_frame),
            time.perf_counter() - start,
            export.target if export else None,
            review.folder if review else None,
            per_frame=per_frame,
        )

    def _anonymized_pictures(
        self,
        src: image_io.ImageSource,
        per_frame: list[Detections],
        export: DataExport | None,
        review: ReviewReport | None,
    ) -> Iterator[image_io.Picture]:
        """The pictures of an image file, anonymized. A photo is one picture; the pages and
        frames of a multi-picture file go through the frame loop, tracked like video frames."""
        if src.frames == 1:
            picture = next(src.pictures())
            dets = self.detect([picture.image])[0]
            anon.apply(picture.image, dets, self.options.anonymize, inplace=True)
            found = [(Frame(0, 0.0, picture.image), dets)]
            pictures = {0: picture}
        else:
            pictures = {}
            found = self.iter_anonymized(_picture_frames(src, pictures), _picture_rate(src))
        for frame, dets in found:
            picture = pictures.pop(frame.index)
            picture.image = frame.image
            per_frame.append(dets)
            if export:
                export.add(frame.index, frame.time, dets)
            if review:
                review.add(Frame(frame.index, frame.time, picture.image), dets)
            yield picture

    def process_video(self, source: Path, target: Path) -> JobResult:
        """Anonymize a video file; target may become a free name."""
        start = time.perf_counter()
        with video_io.VideoSource(source, max_pixels=self.options.max_pixels) as src:
            sink = video_io.VideoSink(
                target,
                src.info,
                self.options.encoder,
                audio_templates=src.audio_streams,
                metadata=src.metadata if self.options.keep_metadata else None,
                overwrite=self.options.overwrite,
            )
            if src.audio_streams and self.options.encoder.keep_audio:
                src.on_audio_packet = sink.add_audio_packet
            target = sink.target
            export = self._export_for(target)
            review = self._review_for(source, target)
            try:
                per_frame = self._run_frames(
                    src.frames(),
                    float(src.info.fps),
                    sink.write,
                    str(source),
                    src.info.frame_count or None,
                    export,
                    review,
                )
                sink.finish()
            except BaseException:
                sink.abort()
                raise
        if export:
            export.write()
        if review:
            review.write()
        return JobResult(
            Path(source),
            target,
            "video",
            len(per_frame),
            sum(len(d) for d in per_frame),
            time.perf_counter() - start,
            export.target if export else None,
            review.folder if review else None,
            per_frame=per_frame,
        )

    # -- the frame loop ------------------------------------------------------------------
    def iter_anonymized(
        self, frames: Iterable[Frame], fps: float, live: bool = False
    ) -> Iterator[tuple[Frame, Detections]]:
        """Anonymized frames in order, with the detections used on each.

        Decoding runs in a background thread; detection is batched; the
        temporal filter may hold frames back to look ahead. A detector that
        offers a per-stream scan (keyframes at full resolution, cheaper passes
        between) gets whole batches of its preferred size.
        """
        scanner = getattr(self.detector, "stream", lambda: None)()
        detect = scanner.detect if scanner is not None else None
        batch_size = self.options.batch_size or max(
            scanner.batch_size if scanner is not None else 1,
            getattr(self.detector, "preferred_batch", 1),
        )
        in_q: queue.Queue = queue.Queue(maxsize=self.options.queue_size)
        stop = threading.Event()

        def decode() -> None:
            try:
                for frame in frames:
                    while not stop.is_set():
                        try:
                            in_q.put(frame, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                in_q.put(_END)
            except BaseException as exc:  # handed to the consuming thread
                in_q.put(exc)

        reader = threading.Thread(target=decode, name="veil-decode", daemon=True)
        reader.start()
        temporal = create_filter(
            self.options.tracking, fps, live=live, threshold=self.options.detector.threshold
        )
        held: dict[int, Frame] = {}
        carry: list = []
        try:
            done = False
            while not done:
                batch = self._next_batch(in_q, carry, batch_size, wait=not live)
                if batch and batch[-1] is _END:
                    batch.pop()
                    done = True
                if self.cancel.is_set():
                    raise Cancelled("cancelled; the partial output was removed")
                if batch:
                    for frame, dets in zip(
                        batch, self.detect([f.image for f in batch], keep_weak=True, detect=detect)
                    ):
                        held[frame.index] = frame
                        for index, final in temporal.push(frame, dets):
                            yield self._finish(held.pop(index), final)
            for index, final in temporal.flush():
                yield self._finish(held.pop(index), final)
        finally:
            stop.set()
            reader.join(timeout=5)

    def _next_batch(self, in_q: queue.Queue, carry: list, size: int, wait: bool) -> list:
        """Up to `size` frames of one shape; stops early at the end marker.

        Files wait for a full batch, so the detections never depend on thread
        timing; live sources take what is there, to keep latency low. A frame
        of another size (a stream that changed resolution) is carried over to
        start the next batch, so every batch is one array shape.
        """
        batch: list = []
        item = carry.pop() if carry else in_q.get()
        while True:
            if isinstance(item, BaseException):
                raise item
            batch.append(item)
            if item is _END or len(batch) >= size:
                return batch
            try:
                item = in_q.get() if wait else in_q.get_nowait()
            except queue.Empty:
                return batch
            if isinstance(item, Frame) and item.image.shape != batch[0].image.shape:
                carry.append(item)
                return batch

    def _finish(self, frame: Frame, dets: Detections) -> tuple[Frame, Detections]:
        frame.image = anon.apply(frame.image, dets, self.options.anonymize, inplace=True)
        return frame, dets

    def _run_frames(
        self,
        frames: Iterable[Frame],
        fps: float,
        write: Callable[[Frame], None],
        name: str,
        total: int | None,
        export: DataExport | None,
        review: ReviewReport | None = None,
    ) -> list[Detections]:
        """Drive iter_anonymized into a writer running in its own thread."""
        out_q: queue.Queue = queue.Queue(maxsize=self.options.queue_size)
        errors: list[BaseException] = []

        def encode() -> None:
            try:
                while (item := out_q.get()) is not _END:
                    write(item)
            except BaseException as exc:
                errors.append(exc)
                while out_q.get() is not _END:  # drain so the producer never blocks
                    pass

        writer = threading.Thread(target=encode, name="veil-encode", daemon=True)
        writer.start()
        per_frame: list[Detections] = []
        try:
            for frame, dets in self.iter_anonymized(frames, fps):
                if errors:
                    break
                if review:
                    review.add(frame, dets)
                out_q.put(frame)
                per_frame.append(dets)
                if export:
                    export.add(frame.index, frame.time, dets)
                if self.progress:
                    self.progress(name, len(per_frame), total)
        finally:
            out_q.put(_END)
            writer.join()
        if errors:
            raise errors[0]
        if not per_frame:
            raise InputError(f"{name}: no frames to process")
        return per_frame


def _picture_frames(src: image_io.ImageSource, pictures: dict) -> Iterator[Frame]:
    """Frames of a multi-picture image at their display times (pages: one a second)."""
    time = 0.0
    for index, picture in enumerate(src.pictures()):
        pictures[index] = picture
        yield Frame(index, time, picture.image)
        time += (picture.duration or 1000) / 1000


def _picture_rate(src: image_io.ImageSource) -> float:
    """Frames per second of an animation (from its first frame), 1 for pages."""
    return 1000 / src.duration if src.duration else 1.0
