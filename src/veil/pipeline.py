"""Wires the rooms together: sources -> detectors -> tracking -> hiding -> sinks.

`FrameLoop` is the one frame loop: it holds frames, pushes their detections through the
temporal filter, releases and hides them. How detections arrive is the strategy passed in:
`BatchDetection` for files (whole batches, deterministic) or `DeadlineDetection` for live
sources (one worker thread, a deadline per frame). Files, `veil live`, `veil.live()`, the web
page's camera, batch workers and `veil eval` all run it.

A file runs in three threads joined by bounded queues: decoding, the frame loop (this
thread), and encoding. PyAV and onnxruntime release the GIL, so the three overlap on a
multi-core machine while memory stays bounded by the queue sizes and the temporal filter's
look-ahead.

Fail closed: a frame leaves only after its detections were computed and applied. In a file
any failure aborts the output (the partial file is deleted); live, the frame is hidden whole.
"""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, overload

import numpy as np

from . import audit as audit_record
from . import hide as anon
from .detections import Detections
from .detectors import Detector, DetectorOptions, detector_for
from .errors import InputError, OptionError, ProcessingError, VeilError
from .filters import DetectionFilter, FilterOptions
from .frame import Frame, in_layout_of, to_bgr
from .io import images as image_io
from .io import video as video_io
from .io.export import FORMATS as EXPORT_FORMATS
from .io.export import DataExport, detections_by_frame, read_rows
from .io.paths import (
    DEFAULT_SUFFIX,
    collect_inputs,
    media_kind,
    names_media_file,
    plan_outputs,
    reserve,
)
from .options import Web, check, option
from .tracking import PassThrough, TrackingOptions, create_filter, detector_options
from .tracking.review import ReviewReport, review_folder

if TYPE_CHECKING:
    from .detectors.base import Stream

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
    keep_metadata: bool = option(
        False,
        "--keep-metadata",
        group="output",
        commands=("main", "batch"),
        help="keep EXIF/GPS and container tags (dropped by default)",
    )
    overwrite: bool = option(
        False,
        "--overwrite",
        group="output",
        commands=("main", "live"),
        help="replace existing outputs instead of picking a free name",
    )
    max_pixels: int = option(
        image_io.DEFAULT_MAX_PIXELS,
        "--max-pixels",
        group="output",
        commands=("main", "batch", "serve"),
        metavar="N",
        help="largest picture decoded, in pixels (all pages of a multi-page image together); "
        "checked before decoding, so a small file that declares a huge picture is refused "
        "(default %(default)s)",
    )
    suffix: str = option(
        DEFAULT_SUFFIX,
        "--suffix",
        group="output",
        commands=("main",),
        help="added to output names (default %(default)s)",
    )
    recursive: bool = option(
        False,
        "-r",
        "--recursive",
        group="output",
        commands=("main",),
        help="include subfolders of input folders",
    )
    export_format: str | None = option(
        None,
        "--export",
        group="output",
        commands=("main", "batch"),
        choices=EXPORT_FORMATS,
        metavar="FORMAT",
        help="also write detections per frame beside each output: " + ", ".join(EXPORT_FORMATS),
    )
    review: bool = option(
        False,
        "--review",
        group="tracking and review (videos)",
        commands=("main",),
        help="also write OUTPUT-STEM_review/ with review.json (frames that relied on filling "
        "or weak detections), contact_sheet.png (those frames, anonymized, boxes outlined) "
        "and heatmap.png (where faces were)",
    )
    audit: bool = option(
        False,
        "--audit",
        group="output",
        commands=("main", "batch"),
        web=Web("Audit record"),
        help="also write OUTPUT.veil.json beside each output: the input's SHA-256, the "
        "settings, the model and its version, areas hidden per frame and any edits",
    )
    detections: str | None = option(
        None,
        "--detections",
        group="tracking and review (videos)",
        commands=("main",),
        metavar="FILE",
        help="hide the boxes of this detections file (the --export json format, edited: "
        "docs/detections.schema.json) instead of detecting again; boxes marked "
        '"hide": false and their tracks stay visible',
    )
    batch_size: int = 0  # frames per detector call; 0 = what the detector prefers
    queue_size: int = 8

    def __post_init__(self) -> None:
        check(self)


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
    audit: Path | None = None
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
        self._loading: cf.Future | None = None
        self.progress = progress
        self.cancel = cancel or threading.Event()
        self._filter = DetectionFilter(options.filters)

    @property
    def detector(self) -> Detector:
        if self._detector is None:
            loading, self._loading = self._loading, None
            self._detector = loading.result() if loading is not None else self._load()
        return self._detector

    def _load(self) -> Detector:
        # Trackers continue faces from detections under the threshold, so ask for those too;
        # the model loads once per process for these settings, whichever front end asks.
        return detector_for(detector_options(self.options.tracking, self.options.detector))

    def _load_ahead(self) -> None:
        """Start loading the detector on a thread of its own, so that it loads while the
        first input is opened and decoded (a photo's pixels, a video's first frames);
        `detector` waits for it and raises what it raised. Loading took 0.2-0.3 s before
        anything else could start: a tenth of a 12 MP photo's run, 3% of a 150-frame 720p
        clip's."""
        if self._detector is not None or self._loading is not None or self.options.detections:
            return
        loader = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="veil-load")
        self._loading = loader.submit(self._load)
        loader.shutdown(wait=False)

    # -- single frames -------------------------------------------------------------------
    def detect(
        self,
        images: Sequence[np.ndarray],
        keep_weak: bool = False,
        detect: Callable[[Sequence[np.ndarray]], list[Detections]] | None = None,
    ) -> list[Detections]:
        """Detections per image at the threshold; keep_weak also returns those under it.

        detect replaces the detector's own call (a per-stream scanner, see detectors/scan.py).
        """
        try:
            found = self._filter(images, (detect or self.detector.detect)(images))
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
        """Pixels in (BGR, greyscale or BGRA), anonymized pixels in the same layout and the
        detections out (no files)."""
        bgr = to_bgr(image)
        dets = self.detect([bgr])[0]
        return in_layout_of(anon.apply(bgr, dets, self.options.anonymize), image), dets

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
        if many and output is not None and names_media_file(output):
            raise OptionError(
                f"-o {output} names one file, but the inputs hold {len(items)}; "
                "give a folder to write them into"
            )
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

    def process(
        self, source: Path, target: Path, *, edits: Sequence[audit_record.Edit] = ()
    ) -> JobResult:
        """Anonymize one file; target may become a free name. With `audit`, the record
        (audit.py) lists `edits`: the corrections made to the detections this run uses."""
        self._load_ahead()
        try:
            digest = audit_record.sha256(source) if self.options.audit else None
        except OSError as exc:
            raise InputError(f"{source}: cannot read ({exc.strerror or exc})") from None
        if media_kind(source) == "image":
            result = self.process_image(source, target)
        else:
            result = self.process_video(source, target)
        if digest is not None:
            result.audit = audit_record.write_record(
                result, self.options, self.detector, input_sha256=digest, edits=edits
            )
        return result

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
        if self.options.detections:
            raise OptionError(f"{source}: --detections renders videos only; this is an image")
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
        result = _finished(source, slot.target, "image", per_frame, start, export, review)
        if self.progress:
            self.progress(str(source), len(per_frame), len(per_frame))
        return result

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
                    src.frames(yuv=True),
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
        return _finished(source, target, "video", per_frame, start, export, review)

    # -- the frame loop ------------------------------------------------------------------
    def iter_anonymized(
        self, frames: Iterable[Frame], fps: float
    ) -> Iterator[tuple[Frame, Detections]]:
        """Anonymized frames of a file in order, with the detections used on each.

        Decoding runs in a background thread; the frame loop detects in whole
        batches (`BatchDetection`) and its temporal filter may hold frames back
        to look ahead. With `detections` set the boxes come from that file instead
        (`FileDetection`). Any failure ends the iteration with its error.
        """
        decoded = self._decoded(frames)
        try:
            # The first frame starts the decoding thread, which goes on while the detector
            # finishes loading (`_load_ahead`).
            started = list(itertools.islice(decoded, 1))
            strategy: DetectionStrategy = (
                FileDetection(detections_by_frame(read_rows(Path(self.options.detections))))
                if self.options.detections
                else BatchDetection(self, first=started[0] if started else None)
            )
            loop = FrameLoop(self, strategy, fps=fps)
            try:
                for frame in itertools.chain(started, decoded):
                    self._check_cancel()
                    for out in loop.push(frame):
                        yield out.frame, out.detections
                for out in loop.flush():
                    self._check_cancel()
                    yield out.frame, out.detections
            finally:
                strategy.close()
        finally:
            decoded.close()

    def _check_cancel(self) -> None:
        if self.cancel.is_set():
            raise Cancelled("cancelled; the partial output was removed")

    def _decoded(self, frames: Iterable[Frame]) -> Iterator[Frame]:
        """The frames, decoded ahead in a thread into a bounded queue; its errors re-raised here."""
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
        try:
            while (item := in_q.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            reader.join(timeout=5)

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


# -- the one frame loop ------------------------------------------------------------------
MISS_POLICIES = ("blur", "drop")  # what leaves for a frame without its detections in time


@dataclass
class Anonymized:
    """A frame ready to leave: its own detections were applied, or it was hidden whole.

    arrived: monotonic clock time the frame entered the loop (live: when it was captured),
    from which live latency is counted.
    """

    frame: Frame
    detections: Detections
    arrived: float
    hidden_whole: bool = False

    @property
    def image(self) -> np.ndarray:
        return self.frame.image

    @property
    def time(self) -> float:
        return self.frame.time

    @property
    def index(self) -> int:
        return self.frame.index


@dataclass(frozen=True)
class Detected:
    """What a detection strategy says about one frame, in the order frames were pushed.

    detections None: there are none for this frame in time, and `miss` says why ("late" or
    "failed", with the `error`); the loop hides the frame whole or drops it. A late result for
    a frame that already left whole comes back as an ordinary `Detected`: it only feeds the
    temporal filter.
    """

    frame: Frame
    detections: Detections | None
    miss: str = ""
    error: BaseException | None = None


class DetectionStrategy(Protocol):
    """How the frame loop gets detections: `BatchDetection` (files) or `DeadlineDetection` (live).

    live: the source cannot be waited for, so the temporal filter may not look ahead and a
    failed stage hides its frame whole instead of stopping the job.
    final: the detections are already tracked and edited (`FileDetection`): the loop hides
    them as they are, with no temporal filter and no threshold.
    """

    live: bool
    final: bool

    def submit(self, frame: Frame, arrived: float) -> list[Detected]:
        """Take one frame; return the frames whose detections are now known, in order."""

    def finish(self) -> list[Detected]:
        """End of input: detections for every frame still waiting."""

    def close(self) -> None:
        """Stop what runs in the background; the loop's owner calls it once, at the end."""


def detector_plan(detector: Detector, strong: float | None = None) -> tuple[Stream | None, int]:
    """The detector's per-stream keyframe scan (None when it has none) and the batch it prefers.

    The one place the loop asks a detector for either; every detector gets the scan's batch
    size at least, so keyframes stay `full_every` apart.
    """
    scanner = detector.stream(strong=strong)
    return scanner, max(scanner.batch_size if scanner is not None else 1, detector.preferred_batch)


class _Pictures(Sequence[np.ndarray]):
    """A batch's pictures as the detector reads them (BGR), each converted from its frame's
    planes when first read: the keyframe scan reads only the frames it runs a pass on, and a
    frame between two that agree takes their boxes unread (detectors/scan.py)."""

    def __init__(self, frames: list[Frame]) -> None:
        self._frames = frames

    def __len__(self) -> int:
        return len(self._frames)

    @overload
    def __getitem__(self, index: int) -> np.ndarray: ...

    @overload
    def __getitem__(self, index: slice) -> list[np.ndarray]: ...

    def __getitem__(self, index: int | slice) -> np.ndarray | list[np.ndarray]:
        if isinstance(index, slice):
            return [frame.image for frame in self._frames[index]]
        return self._frames[index].image


class BatchDetection:
    """Files: whole batches of the preferred size through the detector's keyframe scan, in a
    thread of their own that works one batch ahead of the loop.

    A batch is cut only by its size, a change of frame size (a stream that changed
    resolution) or the end of input, so the detections depend on the frames alone, never on
    thread timing. The loop filters and hides one batch while the next is detected; when both
    ran in one thread, hiding and encoding waited for every batch's detection, and a 720p
    file kept 1.6 of 2 cores busy (docs/speed.md, "Frames per second"). A detection failure
    raises `ProcessingError`: the job stops.
    """

    live = False
    final = False

    def __init__(self, pipeline: Pipeline, *, first: Frame | None = None) -> None:
        self._pipeline = pipeline
        self._scanner, preferred = detector_plan(
            pipeline.detector, pipeline.options.detector.threshold
        )
        if first is not None and self._scanner is not None:
            # The models for the first frame's size load while the first batch decodes, not
            # once it has: reading back the keyframe's compiled model took 0.1-0.15 s of the
            # first keyframe's wait (the scan asks again with the first batch).
            self._scanner.expect(first.height, first.width)
        self._size = pipeline.options.batch_size or preferred
        self._batch: list[Frame] = []
        self._sent: tuple[list[Frame], cf.Future] | None = None
        self._worker = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="veil-detect")

    def submit(self, frame: Frame, arrived: float) -> list[Detected]:
        done = []
        if self._batch and (frame.height, frame.width) != (
            self._batch[0].height,
            self._batch[0].width,
        ):
            done += self._send()
        self._batch.append(frame)
        if len(self._batch) >= self._size:
            done += self._send()
        return done + self._take(wait=False)

    def finish(self) -> list[Detected]:
        return self._send() + self._take(wait=True)

    def close(self) -> None:
        """Let the thread end after the batch it is detecting, if any (a job that stopped
        early or failed does not wait for it)."""
        self._worker.shutdown(wait=False, cancel_futures=True)

    def _send(self) -> list[Detected]:
        """Send the batch filled so far, once the batch before it is done (returned): one
        batch is detected while the loop hides the one before. The detection thread makes
        the BGR copies the detector reads, so only the batch it works on holds them."""
        done = self._take(wait=True)
        batch, self._batch = self._batch, []
        if batch:
            self._sent = (batch, self._worker.submit(self._detect, batch))
        return done

    def _detect(self, batch: list[Frame]) -> list[Detections]:
        detect = self._scanner.detect if self._scanner is not None else None
        found = self._pipeline.detect(_Pictures(batch), keep_weak=True, detect=detect)
        for frame in batch:  # the loop reads frames that keep their planes from those
            frame.drop_image()
        return found

    def _take(self, wait: bool) -> list[Detected]:
        """The detections of the batch sent, if it is done (with wait, once it is)."""
        if self._sent is None or not (wait or self._sent[1].done()):
            return []
        (batch, future), self._sent = self._sent, None
        return [Detected(frame, dets) for frame, dets in zip(batch, future.result())]


class DeadlineDetection:
    """Live sources: each frame's detections by `max_latency` seconds after it arrived.

    Detection runs in one worker thread, so the loop never waits past a frame's deadline: a
    frame whose detection is late, or finds the worker still busy with an earlier late frame,
    is reported late; one whose detection raised is reported failed. A late result still
    feeds the temporal filter when the next frame comes, so tracks keep their history.
    max_latency None waits as long as detection takes (a client that sends its next frame
    only after this one came back, as the web page does). detect_every N detects on one frame
    in N and reuses those boxes between (faster; a face that moves more than the mask margin
    in between is partly uncovered). Call `close` when done.
    """

    live = True
    final = False

    def __init__(
        self, pipeline: Pipeline, *, max_latency: float | None = 1.0, detect_every: int = 1
    ) -> None:
        self._pipeline = pipeline
        _ = pipeline.detector  # the model loads before any deadline runs
        self.max_latency = max_latency
        self.detect_every = detect_every
        self._worker = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="veil-detect")
        self._pending: tuple[Frame, cf.Future] | None = None
        self._last: Detections | None = None
        self._since = 0  # frames since the last in-time detection

    def submit(self, frame: Frame, arrived: float) -> list[Detected]:
        deadline = None if self.max_latency is None else arrived + self.max_latency
        done: list[Detected] = []
        self._since += 1
        if self._pending is not None:
            earlier, future = self._pending
            if not _ready(future, deadline):
                return [Detected(frame, None, "late")]
            self._pending = None
            if future.exception() is None:
                done.append(Detected(earlier, future.result()))
        if self._last is not None and self._since < self.detect_every:
            return [*done, Detected(frame, self._last)]
        future = self._worker.submit(self._detect, frame.image)
        if not _ready(future, deadline):
            self._pending = (frame, future)
            return [*done, Detected(frame, None, "late")]
        if future.exception() is not None:
            return [*done, Detected(frame, None, "failed", future.exception())]
        self._last, self._since = future.result(), 0
        return [*done, Detected(frame, self._last)]

    def finish(self) -> list[Detected]:
        """Nothing waits at the end: a frame still being detected has already left whole."""
        return []

    def close(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)

    def _detect(self, image: np.ndarray) -> Detections:
        return self._pipeline.detect([image], keep_weak=True)[0]


class FileDetection:
    """Files rendered from a detections file (`--detections`, the web page's re-render): each
    frame gets the boxes listed for its index, nothing is detected again.

    The boxes are final: tracking and gap filling happened before the file was written and
    edited, so the loop hides them unchanged. A box for a frame the video does not have means
    the file belongs to another video: the job stops with an `InputError`.
    """

    live = False
    final = True

    def __init__(self, per_frame: dict[int, Detections]) -> None:
        self._per_frame = dict(per_frame)
        self._frames = 0

    def submit(self, frame: Frame, arrived: float) -> list[Detected]:
        self._frames = max(self._frames, frame.index + 1)
        return [Detected(frame, self._per_frame.pop(frame.index, Detections.empty()))]

    def close(self) -> None:
        """Nothing runs in the background."""

    def finish(self) -> list[Detected]:
        if self._per_frame:
            raise InputError(
                f"the detections file has boxes for frame {min(self._per_frame)} but the video "
                f"has {self._frames} frames; is it the export of another video?"
            )
        return []


def _ready(future: cf.Future, deadline: float | None) -> bool:
    """Whether the future finished (with a result or an error) by the deadline."""
    timeout = None if deadline is None else max(deadline - time.monotonic(), 0.0)
    try:
        future.exception(timeout=timeout)
    except cf.TimeoutError:
        return False
    return True


class FrameLoop:
    """The one frame loop: holds frames, pushes them through the temporal filter, releases
    and hides them, with the detection strategy passed in.

    Files (`iter_anonymized`), `veil live`, `veil.live()` and the web page's camera all run
    it. Fail closed: a frame leaves only with its own detections applied. With a live strategy
    a frame whose detection was late or failed, or whose filtering or hiding failed, is hidden
    whole (`hide.blur_whole_frame`) or, with on_miss="drop", not released at all; `misses`
    counts them by reason. With a file strategy any failure raises, and the caller removes
    the partial output.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        detection: DetectionStrategy,
        *,
        fps: float,
        on_miss: str = "blur",
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.options = pipeline.options
        self.detection = detection
        self.on_miss = on_miss
        self.log = log
        self.misses: Counter[str] = Counter()
        self._temporal = (
            PassThrough()
            if detection.final
            else create_filter(
                self.options.tracking,
                fps,
                live=detection.live,
                threshold=self.options.detector.threshold,
            )
        )
        self._held: dict[int, tuple[Frame, float]] = {}
        # Boxes hidden while their frame waits for the look-ahead (see _hide_early).
        self._early: dict[int, Detections] = {}
        anonymize = self.options.anonymize
        self._hides_early = not detection.final and not (
            anonymize.method == "none" or anonymize.draw_boxes or anonymize.draw_scores
        )
        self._logged = False

    def push(self, frame: Frame, arrived: float | None = None) -> list[Anonymized]:
        """Take one frame (arrived: when it was captured, default now); return the frames now
        ready to leave, in order."""
        arrived = time.monotonic() if arrived is None else arrived
        self._held[frame.index] = (frame, arrived)
        return self._take(self.detection.submit(frame, arrived))

    def flush(self) -> list[Anonymized]:
        """End of input: every frame still held leaves, hidden."""
        out = self._take(self.detection.finish())
        try:
            released = self._temporal.flush()
        except Exception as exc:
            return out + self._failed(list(self._held), exc)
        return out + self._release(released)

    def _take(self, steps: list[Detected]) -> list[Anonymized]:
        out: list[Anonymized] = []
        for step in steps:
            if step.detections is None:
                out += self._missed([step.frame.index], step.miss, step.error)
                continue
            try:
                released = self._temporal.push(step.frame, step.detections)
            except Exception as exc:
                out += self._failed([step.frame.index], exc)
                continue
            step.frame.drop_image()  # held for look-ahead as its decoded planes only
            out += self._release(released)
            out += self._hide_early(step.frame, step.detections)
        return out

    def _hide_early(self, frame: Frame, detections: Detections) -> list[Anonymized]:
        """Hide a frame's confident detections while it waits for the look-ahead.

        Every temporal filter releases the detections at or above the threshold
        unchanged, first and in their order, and only adds boxes after them. Hiding
        those now spreads the work over the time the loop waits for detection: a clip
        shorter than the look-ahead was otherwise hidden whole after its last frame was
        detected (2 of 11 s on a 24-frame 1080p clip of a 196-face crowd). _release
        hides the rest, or everything again should the released boxes not start with
        these (hiding twice is safe, missing a box is not).
        """
        if not self._hides_early or frame.index not in self._held:
            return []
        sure = detections[detections.score >= self.options.detector.threshold]
        if not len(sure):
            return []
        try:
            _hide(frame, sure, self.options.anonymize)
        except Exception as exc:
            return self._failed([frame.index], exc)
        self._early[frame.index] = sure
        return []

    def _release(self, pairs: list[tuple[int, Detections]]) -> list[Anonymized]:
        """Hide the released frames still held (one that left whole earlier is not)."""
        out = []
        for index, final in pairs:
            if index not in self._held:
                continue
            frame, arrived = self._held[index]
            early = self._early.pop(index, Detections.empty())
            rest = final
            if len(early) and np.array_equal(final.xyxy[: len(early)], early.xyxy):
                rest = final[len(early) :]
            try:
                _hide(frame, rest, self.options.anonymize)
            except Exception as exc:
                out += self._failed([index], exc)
                continue
            del self._held[index]
            out.append(Anonymized(frame, final, arrived))
        return out

    def _failed(self, indices: list[int], error: Exception) -> list[Anonymized]:
        """A stage raised: files stop (the error goes on), live frames leave whole."""
        if not self.detection.live:
            raise error
        return self._missed(indices, "failed", error)

    def _missed(
        self, indices: list[int], reason: str, error: BaseException | None
    ) -> list[Anonymized]:
        if error is not None and self.log is not None and not self._logged:
            self._logged = True
            cause = error.__cause__ or error
            self.log(
                f"a frame could not be anonymized ({type(cause).__name__}: {cause}); "
                "such frames are hidden whole"
            )
        out = []
        for index in indices:
            if index not in self._held:  # a late result's frame, already gone whole
                continue
            self.misses[reason] += 1
            frame, arrived = self._held.pop(index)
            self._early.pop(index, None)
            if self.on_miss != "drop":
                frame.image = anon.blur_whole_frame(frame.image)
                out.append(Anonymized(frame, Detections.empty(), arrived, hidden_whole=True))
        return out


def _finished(
    source: Path,
    target: Path,
    kind: str,
    per_frame: list[Detections],
    start: float,
    export: DataExport | None,
    review: ReviewReport | None,
) -> JobResult:
    """Write a job's side outputs (the detections file, the review folder) once its output is
    in place, and say what it made."""
    if export:
        export.write()
    if review:
        review.write()
    return JobResult(
        Path(source),
        target,
        kind,
        len(per_frame),
        sum(len(d) for d in per_frame),
        time.perf_counter() - start,
        export.target if export else None,
        review.folder if review else None,
        per_frame=per_frame,
    )


def _hide(frame: Frame, detections: Detections, options: anon.AnonymizeOptions) -> None:
    """Hide in place: on the decoded planes when the frame keeps them (only the hidden
    regions are converted), else on the BGR image, which then becomes the picture."""
    if frame.yuv is not None and not (options.draw_boxes or options.draw_scores):
        anon.apply_i420(frame.yuv, detections, options)
        frame.drop_image()  # a later reader sees the hidden planes, never the decoded copy
    else:
        frame.image = anon.apply(frame.image, detections, options, inplace=True)


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
