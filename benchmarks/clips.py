"""Benchmark clips with real faces at 720p and 1080p, built once and cached.

From the shared talking-head video (608x1080) when it is present: each frame is
mirrored out to 16:9, which gives three real faces per frame, then scaled.
Otherwise a slow pan over scikit-image's astronaut photo.
"""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED_VIDEO = ROOT.parent / "shared" / "data" / "videos" / "egoblur_gen1_test_video.mp4"
SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}


def _to_16_9(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    target_w = h * 16 // 9
    if w >= target_w:
        x0 = (w - target_w) // 2
        return image[:, x0 : x0 + target_w]
    left = (target_w - w) // 2
    return np.pad(image, ((0, 0), (left, target_w - w - left), (0, 0)), mode="symmetric")


def source_frames(n: int) -> tuple[list[np.ndarray], int, str]:
    """n BGR frames with real faces, their frame rate and where they came from."""
    if SHARED_VIDEO.is_file():
        frames = []
        with av.open(str(SHARED_VIDEO)) as container:
            stream = container.streams.video[0]
            fps = int(round(float(stream.average_rate or 30)))
            for frame in container.decode(stream):
                frames.append(_to_16_9(frame.to_ndarray(format="bgr24")))
                if len(frames) == n:
                    break
        return frames, fps, SHARED_VIDEO.name
    import skimage.data

    photo = _to_16_9(np.ascontiguousarray(skimage.data.astronaut()[:, :, ::-1]))
    photo = cv2.resize(photo, SIZES["1080p"], interpolation=cv2.INTER_CUBIC)
    pad = 4 * n
    canvas = np.pad(photo, ((0, 0), (pad, pad), (0, 0)), mode="symmetric")
    w = photo.shape[1]
    return (
        [canvas[:, pad - 4 * i : pad - 4 * i + w] for i in range(n)],
        25,
        "skimage astronaut (pan)",
    )


def build_clips(folder: Path, n: int) -> dict[str, Path]:
    """720p and 1080p H.264 clips of n frames (reused when already built)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / f"faces_{name}_{n}.mp4" for name in SIZES}
    if all(p.is_file() for p in paths.values()):
        return paths
    frames, fps, _ = source_frames(n)
    for name, (w, h) in SIZES.items():
        tmp = paths[name].with_suffix(".part.mp4")
        with av.open(str(tmp), "w") as container:
            stream = container.add_stream("libx264", rate=fps)
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            stream.options = {"crf": "18", "preset": "veryfast"}
            for image in frames:
                scaled = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
                for packet in stream.encode(av.VideoFrame.from_ndarray(scaled, format="bgr24")):
                    container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
        tmp.rename(paths[name])
    return paths
