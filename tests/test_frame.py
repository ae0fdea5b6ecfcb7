import cv2
import numpy as np

from veil.frame import Frame


def planes_of(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420)


def test_image_is_converted_from_the_planes(astronaut):
    yuv = planes_of(astronaut)
    frame = Frame(0, 0.0, yuv=yuv)
    assert np.array_equal(frame.image, cv2.cvtColor(yuv, cv2.COLOR_YUV2BGR_I420))


def test_size_comes_from_the_planes_without_converting(astronaut):
    frame = Frame(0, 0.0, yuv=planes_of(astronaut[:, :500]))
    assert (frame.height, frame.width) == (512, 500)
    assert frame._image is None


def test_assigning_an_image_makes_it_the_picture(astronaut):
    frame = Frame(0, 0.0, yuv=planes_of(astronaut))
    frame.image = np.zeros_like(astronaut)
    assert frame.yuv is None


def test_dropped_image_is_rebuilt_from_the_planes(astronaut):
    frame = Frame(0, 0.0, yuv=planes_of(astronaut))
    first = frame.image
    frame.yuv[:] = 16  # the planes change, as hiding changes them
    frame.drop_image()
    assert not np.array_equal(frame.image, first)


def test_drop_image_keeps_an_image_without_planes(astronaut):
    frame = Frame(0, 0.0, astronaut)
    frame.drop_image()
    assert frame.image is astronaut
