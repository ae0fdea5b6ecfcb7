"""Measuring accuracy: detection scores on labelled data, and how well hiding resists
re-identification.

`veil eval` (command.py) scores a detector setting on labelled images or
videos; reid.py measures whether a face-recognition model can still match an
anonymized face to the original.
"""
