"""Live anonymization of cameras and streams: the real-time loop (realtime.py) and `veil live`
(command.py)."""

from .realtime import LiveAnonymizer, LiveOptions, LiveStats, LiveStream, open_live

__all__ = ["LiveAnonymizer", "LiveOptions", "LiveStats", "LiveStream", "open_live"]
