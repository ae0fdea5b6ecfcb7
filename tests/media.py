"""Real test media and checks shared by the tests: scikit-image photos, videos made from them,
and the astronaut's face position. Fixtures live in conftest.py; this module holds plain
functions."""

from __future__ import annotations

import contextlib
import fractions
import functools
import json
import logging
import os
import resource
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import skimage.data

from veil.boxes import box_iou
from veil.evaluation.metrics import agreement

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
# Subprocesses import this checkout's veil, whatever is installed.
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
# For runs under an address-space limit: malloc arenas and thread pools reserve address space
# per thread, which would count against the limit without ever being used.
LOW_MEMORY_ENV = {**ENV, "MALLOC_ARENA_MAX": "2", "OMP_NUM_THREADS": "1"}

# Where the faces are in the scikit-image photos (checked by eye, generous).
ASTRONAUT_FACE = (170, 40, 285, 200)  # x1, y1, x2, y2
CAMERA_FACE = (195, 105, 265, 205)


def astronaut_bgr() -> np.ndarray:
    """scikit-image's astronaut portrait (public domain), BGR."""
    return np.ascontiguousarray(skimage.data.astronaut()[:, :, ::-1])


def camera_bgr() -> np.ndarray:
    """scikit-image's cameraman (greyscale), as BGR."""
    return cv2.cvtColor(skimage.data.camera(), cv2.COLOR_GRAY2BGR)


def run_veil(*args, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """`python -m veil ARGS` from this checkout, text output captured."""
    return subprocess.run(
        [sys.executable, "-m", "veil", *map(str, args)],
        capture_output=True,
        text=True,
        env=kwargs.pop("env", ENV),
        timeout=timeout,
        **kwargs,
    )


def write_video(
    path: Path,
    frames: list[np.ndarray],
    fps: int = 25,
    audio_seconds: float = 0.0,
    metadata: dict[str, str] | None = None,
    codec: str = "libx264",
    gop: int | None = None,
) -> Path:
    """Encode BGR frames (and a 440 Hz tone if asked) with PyAV; gop fixes the keyframe interval."""
    container = av.open(str(path), "w")
    if metadata:
        container.metadata.update(metadata)
    h, w = frames[0].shape[:2]
    stream = container.add_stream(codec, rate=fps)
    stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
    stream.options = {"crf": "12", "preset": "ultrafast"}
    if gop:
        stream.codec_context.gop_size = gop
        stream.options = {
            **stream.options,
            "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0",
        }
    audio = container.add_stream("aac", rate=44100) if audio_seconds else None
    for image in frames:
        for packet in stream.encode(
            av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
        ):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)
    if audio is not None:
        n = 1024
        for i in range(int(audio_seconds * 44100 / n)):
            t = (np.arange(n) + i * n) / 44100
            samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 44100, i * n
            for packet in audio.encode(frame):
                container.mux(packet)
        for packet in audio.encode(None):
            container.mux(packet)
    container.close()
    return path


def read_video(path: Path) -> tuple[list[np.ndarray], list[float]]:
    """All frames (BGR) and their presentation times in seconds."""
    images, times = [], []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            images.append(frame.to_ndarray(format="bgr24"))
            times.append(float(frame.pts * stream.time_base))
    return images, times


def video_with_audio(path, frames, codec, audio_start: float, rate=16000, fps=10, video_start=0.0):
    """A clip whose audio (a 440 Hz tone in `codec`) starts `audio_start` seconds in."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        audio = container.add_stream(codec, rate=rate)
        audio.layout = "mono"
        for i, image in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(image, format="bgr24")
            vf.pts, vf.time_base = round((video_start + i / fps) * fps), fractions.Fraction(1, fps)
            for packet in video.encode(vf):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        n, chunk = int(rate * len(frames) / fps), 1024
        for start in range(0, n - chunk, chunk):
            t = (np.arange(chunk) + start) / rate
            samples = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)[None]
            af = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
            af.sample_rate = rate
            af.pts, af.time_base = start + round(audio_start * rate), fractions.Fraction(1, rate)
            for packet in audio.encode(af):
                container.mux(packet)
        for packet in audio.encode(None):
            container.mux(packet)
    return path


def sound_starts(path) -> float:
    """When the first audible sample plays, relative to the first video frame (seconds)."""
    with av.open(str(path)) as container:
        video = next(container.decode(container.streams.video[0])).time
        container.seek(0)
        for frame in container.decode(container.streams.audio[0]):
            samples = np.abs(frame.to_ndarray().astype(np.float32)).max(axis=0)
            loud = np.flatnonzero(samples > 0.02 * (32767 if samples.max() > 1.5 else 1))
            if len(loud):
                return frame.time + loud[0] / frame.sample_rate - video
    raise AssertionError("no sound")


def panning_frames(image: np.ndarray, n: int, step: int = 3) -> list[np.ndarray]:
    """A slow horizontal pan over a real photo: the face moves, the content stays real."""
    pad = step * n
    canvas = cv2.copyMakeBorder(image, 0, 0, pad, pad, cv2.BORDER_REFLECT)
    w = image.shape[1]
    return [np.ascontiguousarray(canvas[:, pad - i * step : pad - i * step + w]) for i in range(n)]


def crowd_bgr(
    sides: tuple[int, ...] = (12, 14, 16, 18, 20), rows: int = 4, spacing: int = 60
) -> tuple[np.ndarray, np.ndarray]:
    """A crowd of small faces: rows of the faces of scikit-image's LFW subset (real
    photographs, cropped to the face), `sides` px square, on its rocket scene scaled to
    1280x854. Returns the image and the face boxes."""
    scene = cv2.resize(np.ascontiguousarray(skimage.data.rocket()[:, :, ::-1]), (1280, 854))
    faces = skimage.data.lfw_subset()[:100]  # the first 100 are faces
    per_row = (1280 - 100) // spacing
    boxes = []
    for k in range(rows * per_row):
        side = sides[k % len(sides)]
        face = cv2.cvtColor((faces[k % len(faces)] * 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)
        x, y = 50 + (k % per_row) * spacing, 300 + (k // per_row) * spacing
        scene[y : y + side, x : x + side] = cv2.resize(
            face, (side, side), interpolation=cv2.INTER_AREA
        )
        boxes.append([x, y, x + side, y + side])
    return scene, np.array(boxes, np.float32)


def hidden_faces(original: np.ndarray, result: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Per face box, whether the output changed at least half its pixels (as `veil eval --pan`
    counts a face as covered)."""
    from veil.evaluation.pan import COVERED_SHARE, changed_share

    return changed_share(result, original, boxes) >= COVERED_SHARE


def live_loop(pipeline, frames, fps: float, *, max_latency: float | None = None, **loop) -> list:
    """Frames through the one frame loop with the live detection strategy, as `veil live` and
    the web camera run it: pushed one at a time (arriving now), then flushed."""
    from veil.pipeline import DeadlineDetection, FrameLoop

    detection = DeadlineDetection(pipeline, max_latency=max_latency)
    frame_loop = FrameLoop(pipeline, detection, fps=fps, **loop)
    try:
        return [out for frame in frames for out in frame_loop.push(frame)] + frame_loop.flush()
    finally:
        detection.close()


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def astronaut_face_hidden(
    original: np.ndarray, result: np.ndarray, shift: int = 0, background: float = 5.0
) -> bool:
    """The astronaut's inner face (moved `shift` px right) changed strongly while the lower
    part of the picture changed no more than `background` (re-encoding noise)."""
    x1, y1, x2, y2 = ASTRONAUT_FACE
    inner = (slice(y1 + 40, y2 - 40), slice(x1 + 30 + shift, x2 - 30 + shift))
    return (
        mean_abs_diff(original[inner], result[inner]) > 12
        and mean_abs_diff(original[380:], result[380:]) < background
    )


def load_json(path: Path):
    return json.loads(Path(path).read_text())


def default_overlay(path: str) -> str:
    """A round emoji-like PNG with transparent corners, written to path (re-identification tests
    and sweeps)."""
    img = np.zeros((128, 128, 4), np.uint8)
    cv2.circle(img, (64, 64), 60, (40, 200, 250, 255), -1, cv2.LINE_AA)
    cv2.circle(img, (44, 50), 8, (30, 30, 30, 255), -1, cv2.LINE_AA)
    cv2.circle(img, (84, 50), 8, (30, 30, 30, 255), -1, cv2.LINE_AA)
    cv2.ellipse(img, (64, 78), (30, 18), 0, 0, 180, (30, 30, 30, 255), 5, cv2.LINE_AA)
    cv2.imwrite(path, img)
    return path


def astronaut_face(embedder):
    """The astronaut portrait from scikit-image (public domain), with dlib's box for it."""
    image = astronaut_bgr()
    boxes = embedder.find(image)
    if not len(boxes):
        raise RuntimeError("dlib found no face in the astronaut photo")
    best = int(
        np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) * (boxes[:, 1] < 200))
    )
    return embedder.face(image, boxes[best])


def big_photo(path: Path, tiles: int = 19) -> Path:
    """The astronaut tiled 19 x 19: 9728 x 9728 pixels, 95 MP, just under the 100 MP default."""
    cv2.imwrite(str(path), np.tile(astronaut_bgr(), (tiles, tiles, 1)))
    return path


def blank_png(path, width, height):
    """A valid greyscale PNG of that size, written a row at a time (a few hundred KB)."""

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    compressor, row, parts = zlib.compressobj(9), b"\x00" * (width + 1), []
    for _ in range(height):
        parts.append(compressor.compress(row))
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", b"".join(parts))
        + chunk(b"IEND", b"")
    )
    return path


# `python -c VEIL_CLI ARGS` runs `veil ARGS` (for the runners below, which add to the code).
VEIL_CLI = "import sys\nfrom veil.cli import main\nsys.exit(main(sys.argv[1:]))"


def _run_reporting(field: str, code: str, *args, env: dict, timeout: float):
    """Run Python `code` in a fresh interpreter that prints its own /proc/self/status `field`
    (VmHWM, VmPeak) as it exits; returns the finished process and that figure in MiB."""
    trailer = (
        "\nimport atexit, sys\n"
        "def _report():\n"
        "    status = open('/proc/self/status').read()\n"
        f"    kib = int(status.split('{field}:')[1].split()[0])\n"
        f"    print('{field}', kib >> 10, file=sys.stderr)\n"
        "atexit.register(_report)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", trailer + code, *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    figures = [line.split()[1] for line in run.stderr.splitlines() if line.startswith(field + " ")]
    return run, int(figures[-1]) if figures else None


def peak_memory_mib(code: str, *args, env: dict, timeout: float = 600):
    """Run Python `code` in a fresh interpreter; returns the finished process and the peak
    resident memory of that interpreter alone, in MiB.

    The peak is the child's own VmHWM, read as it exits: getrusage's ru_maxrss would also
    count the parent's resident memory at fork, which carries across exec on Linux (a test
    process that has loaded models reads gigabytes)."""
    return _run_reporting("VmHWM", code, *args, env=env, timeout=timeout)


@functools.cache
def veil_address_space_mib() -> int:
    """The address space (VmPeak) of a `veil` run on a small photo here, model loaded and run.

    Runtimes reserve address space per thread and per core, so it differs between machines
    while the memory a run uses does not: a limit meant to leave a run N MiB for its pictures
    is this plus N."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "small.jpg"
        cv2.imwrite(str(src), astronaut_bgr())
        run, peak = _run_reporting(
            "VmPeak",
            VEIL_CLI,
            src,
            "-o",
            Path(tmp) / "out.jpg",
            "-q",
            env=LOW_MEMORY_ENV,
            timeout=300,
        )
    assert run.returncode == 0, run.stderr
    return peak


def limit_memory(mib: int):
    def apply():
        resource.setrlimit(resource.RLIMIT_AS, (mib << 20, mib << 20))

    return apply


def compile_by_use(engine, shape: tuple[int, ...], seconds: float = 300.0) -> None:
    """Run an OpenVINO engine on blobs of this shape until the shape earns a compiled model of
    its own (OpenVinoEngine's ski-rental rule). The rule weighs time spent against the time a
    compilation took, so on a busy machine this takes as long, not as many runs."""
    blob = np.zeros(shape, np.uint8)
    deadline = time.monotonic() + seconds
    while shape not in engine.compiled_shapes:
        if time.monotonic() > deadline:
            raise AssertionError(f"{shape} was never compiled")
        engine.run(blob)


@contextlib.contextmanager
def veil_log():
    """Messages of the 'veil' logger while the block runs."""
    lines: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("veil")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


# How far each precision may move a box (fraction of the face's height) and a score: float32
# is the same arithmetic; bfloat16 keeps 8 bits of mantissa; INT8 has 8-bit activations, one
# range per tensor. Measured on these photos: bf16 0.041 and 0.007, int8 0.046 and 0.052.
TOLERANCE = {"fp32": (0.005, 0.002), "fp16": (0.02, 0.01), "bf16": (0.06, 0.03), "int8": (0.1, 0.1)}


def assert_same_faces(expected, found, precision: str, sure: float = 0.5) -> None:
    """Every face one side finds with a score of at least `sure` the other finds too (at the
    detector's threshold), its box within the precision's tolerance."""
    box_tol, score_tol = TOLERANCE[precision]
    missed, shift, score = agreement(expected, found, sure=sure)
    assert missed == 0, f"{missed} sure faces found on one side only"
    assert shift <= box_tol, f"a box moved {shift:.4f} of its height"
    assert score <= score_tol, f"a score moved {score:.4f}"


def assert_astronaut_found(found) -> None:
    assert len(found) == 1
    assert box_iou(found.xyxy, np.asarray([ASTRONAUT_FACE], float))[0, 0] > 0.5


def skip_without_reid() -> None:
    """Skip (a test, or a whole module where called at its top) without the reid extra: dlib and
    face-recognition-models' weights, found as veil finds them."""
    from veil.keep_face import dlib_models

    try:
        dlib_models()
    except ImportError as exc:
        pytest.skip(f"the reid extra is not installed ({exc})", allow_module_level=True)
