"""A decoded picture on its way through the pipeline."""

from __future__ import annotations

import cv2
import numpy as np

from .errors import InputError


class Frame:
    """index: position in the source; time: presentation time in seconds read from
    the container (never assumed from fps); image: BGR uint8 HxWx3.

    yuv: the picture as the decoder gave it, I420 planes in one (H*3/2)xW uint8 array, kept
    when the encoder takes that format (video files with even sizes, see io/video.py), so
    the picture never goes through BGR and back: the detectors read `image`, hiding works on
    the planes (hide.apply_i420) and the encoder takes them as they are. While `yuv` is set it
    is the picture and `image` a copy for reading: `drop_image` forgets that copy (a frame
    held for look-ahead then costs half the memory) and reading `image` again converts the
    planes afresh. Assigning `image` makes it the picture and drops `yuv`.
    """

    __slots__ = ("index", "time", "yuv", "_image")

    def __init__(
        self,
        index: int,
        time: float,
        image: np.ndarray | None = None,
        *,
        yuv: np.ndarray | None = None,
    ) -> None:
        if image is None and yuv is None:
            raise ValueError("a Frame needs an image or yuv planes")
        self.index = index
        self.time = time
        self.yuv = yuv
        self._image = image

    @property
    def image(self) -> np.ndarray:
        if self._image is None:
            self._image = cv2.cvtColor(self.yuv, cv2.COLOR_YUV2BGR_I420)
        return self._image

    @image.setter
    def image(self, value: np.ndarray) -> None:
        self._image = value
        self.yuv = None

    def drop_image(self) -> None:
        """Forget the BGR copy of a frame that keeps its planes (no-op otherwise)."""
        if self.yuv is not None:
            self._image = None

    @property
    def nbytes(self) -> int:
        """Bytes of the picture as the frame holds it (its planes, else its BGR image)."""
        return int((self.yuv if self.yuv is not None else self.image).nbytes)

    @property
    def height(self) -> int:
        if self.yuv is not None:
            return int(self.yuv.shape[0]) * 2 // 3
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        if self.yuv is not None:
            return int(self.yuv.shape[1])
        return int(self.image.shape[1])

    def __repr__(self) -> str:
        kind = "yuv" if self.yuv is not None else "bgr"
        return f"Frame(index={self.index}, time={self.time:.3f}, {self.width}x{self.height} {kind})"


def to_bgr(image: np.ndarray) -> np.ndarray:
    """A BGR HxWx3 picture of a greyscale (HxW, HxWx1), BGR or BGRA array (BGR: itself).

    Detectors and hiding methods work on BGR; callers of the Python API hand in what
    their library gives them (a greyscale scan, a PNG with alpha) and get that back
    through `in_layout_of`.
    """
    array = np.asarray(image)
    if array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 1):
        return cv2.cvtColor(array.reshape(array.shape[:2]), cv2.COLOR_GRAY2BGR)
    if array.ndim == 3 and array.shape[2] == 4:
        return np.ascontiguousarray(array[:, :, :3])
    if array.ndim == 3 and array.shape[2] == 3:
        return array
    raise InputError(
        f"expected a greyscale (HxW, HxWx1), BGR (HxWx3) or BGRA (HxWx4) picture, "
        f"got shape {array.shape}"
    )


def in_layout_of(bgr: np.ndarray, original: np.ndarray) -> np.ndarray:
    """A BGR result of `to_bgr(original)` in the original's layout (alpha taken from it)."""
    if original.ndim == 2:
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    if original.shape[2] == 1:
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)[:, :, None]
    if original.shape[2] == 4:
        return np.concatenate([bgr, original[:, :, 3:]], axis=2)
    return bgr
