"""Reading and writing pictures, videos and live streams."""

# OpenCV loads before PyAV: both wheels bundle their own libxcb, and once PyAV's copy is loaded
# first, OpenCV's Qt window (veil live --preview) hangs as it opens, in xcb_shm_query_version.
import cv2  # noqa: F401
