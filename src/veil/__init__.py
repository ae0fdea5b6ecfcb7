"""veil: anonymize people in images, videos and live streams.

The public API is small and loads its heavy parts lazily, so `import veil` is fast:

    import veil
    out = veil.anonymize_image("photo.jpg")             # writes photo_anonymized.jpg
    pixels, dets = veil.Pipeline().anonymize_image(bgr)  # arrays in, arrays out
    hidden = veil.anonymize(bgr, dets, method="pixelate")
    shown = veil.annotate(hidden, dets)                  # boxes labelled '#track class score'

    from veil.converters import from_keypoints
    dets = from_keypoints(pose_xy, pose_conf)            # face boxes from a pose model
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from .detections import Detections
    from .pipeline import JobOptions, JobResult, Pipeline

_LAZY = {
    "Detections": ("veil.detections", "Detections"),
    "Pipeline": ("veil.pipeline", "Pipeline"),
    "JobOptions": ("veil.pipeline", "JobOptions"),
    "JobResult": ("veil.pipeline", "JobResult"),
    "AnonymizeOptions": ("veil.hide", "AnonymizeOptions"),
    "DetectorOptions": ("veil.detectors", "DetectorOptions"),
    "VeilError": ("veil.errors", "VeilError"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        module, attr = _LAZY[name]
        return getattr(import_module(module), attr)
    raise AttributeError(f"module 'veil' has no attribute {name!r}")


def _job_options(options: JobOptions | None, overrides: dict[str, Any]) -> JobOptions:
    import dataclasses

    from .hide import AnonymizeOptions
    from .pipeline import JobOptions

    options = options or JobOptions()
    anon_fields = {f.name for f in dataclasses.fields(AnonymizeOptions)}
    anon = {k: v for k, v in overrides.items() if k in anon_fields}
    job = {k: v for k, v in overrides.items() if k not in anon_fields}
    return dataclasses.replace(
        options, anonymize=dataclasses.replace(options.anonymize, **anon), **job
    )


def anonymize_image(
    path: str, output: str | None = None, options: JobOptions | None = None, **overrides: Any
) -> JobResult:
    """Anonymize one image file; returns the result with the output path and detections.

    Keyword overrides name fields of AnonymizeOptions (method, shape, mask_scale, ...)
    or JobOptions (overwrite, keep_metadata, ...).
    """
    return _anonymize_file(path, output, options, overrides)


def anonymize_video(
    path: str, output: str | None = None, options: JobOptions | None = None, **overrides: Any
) -> JobResult:
    """Anonymize one video file (audio kept, metadata dropped); overrides as in anonymize_image."""
    return _anonymize_file(path, output, options, overrides)


def _anonymize_file(
    path: str, output: str | None, options: JobOptions | None, overrides: dict[str, Any]
) -> JobResult:
    from .pipeline import Pipeline

    results = Pipeline(_job_options(options, overrides)).run([path], output)
    return results[0]


def anonymize(
    frame: Any,
    detections: Detections,
    method: str = "blur",
    shape: str = "ellipse",
    padding: float = 1.6,
    **options: Any,
) -> Any:
    """Hide `detections` in a BGR frame and return a new frame (the input is untouched).

    padding is the mask scale: 1.0 hides exactly the boxes, 1.6 (the default) grows them by 60%.
    """
    from . import hide as anon

    opts = anon.AnonymizeOptions(method=method, shape=shape, mask_scale=padding, **options)
    return anon.apply(frame, detections, opts)


def annotate(
    frame: Any,
    detections: Detections,
    names: dict[int, str] | None = None,
    color: tuple[int, int, int] = (0, 255, 0),
) -> Any:
    """A copy of the frame with each detection outlined and labelled '#track class score'."""
    from .hide import draw

    return draw(frame.copy(), detections, names=names, color=color)


def live(source: str | int, options: JobOptions | None = None, **overrides: Any):
    """Anonymized frames of a camera (index or /dev/video path) or stream URL, as they arrive.

        for frame in veil.live("rtsp://camera/stream"):
            use(frame.image)             # BGR, already anonymized (or blurred whole if too late)

    Keyword overrides name fields of AnonymizeOptions, JobOptions or LiveOptions
    (max_latency, on_miss, detect_every, duration, max_frames, ...).
    """
    import dataclasses

    from .livestream import LiveOptions, open_live

    live_fields = {f.name for f in dataclasses.fields(LiveOptions)}
    live_options = LiveOptions(**{k: v for k, v in overrides.items() if k in live_fields})
    job = _job_options(options, {k: v for k, v in overrides.items() if k not in live_fields})
    return open_live(source, job, live_options)


__all__ = [
    "__version__",
    "anonymize",
    "annotate",
    "live",
    "anonymize_image",
    "anonymize_video",
    "Detections",
    "Pipeline",
    "JobOptions",
    "JobResult",
    "AnonymizeOptions",
    "DetectorOptions",
    "VeilError",
]
