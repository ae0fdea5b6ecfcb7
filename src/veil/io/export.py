"""Per-frame detection export: csv, tsv, txt (space separated) or json.

One row per box: time in milliseconds, frame index, box corners, score,
class and track id (-1 when untracked). Written atomically like every output.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ..detections import CLASS_NAMES, Detections
from ..errors import OptionError
from .paths import atomic_output

FORMATS = ("csv", "tsv", "txt", "json")
COLUMNS = ["time_ms", "frame", "x1", "y1", "x2", "y2", "score", "class", "track_id"]


class DataExport:
    """Collects detections frame by frame and writes them when the job ends."""

    def __init__(self, target: Path, fmt: str | None = None) -> None:
        fmt = (fmt or target.suffix.lstrip(".")).lower()
        if fmt not in FORMATS:
            raise OptionError(f"unknown export format '{fmt}'; choose one of: {', '.join(FORMATS)}")
        self.target = target
        self.format = fmt
        self.rows: list[list] = []

    def add(self, frame_index: int, time_s: float, detections: Detections) -> None:
        for i in range(len(detections)):
            x1, y1, x2, y2 = (round(float(v), 2) for v in detections.xyxy[i])
            cls = int(detections.class_id[i])
            self.rows.append(
                [
                    round(time_s * 1000, 3),
                    frame_index,
                    x1,
                    y1,
                    x2,
                    y2,
                    round(float(detections.score[i]), 4),
                    CLASS_NAMES.get(cls, str(cls)),
                    int(detections.track_id[i]),
                ]
            )

    def write(self) -> Path:
        with atomic_output(self.target) as tmp:
            with open(tmp, "w", newline="", encoding="utf-8") as fh:
                if self.format == "json":
                    json.dump([dict(zip(COLUMNS, row)) for row in self.rows], fh, indent=1)
                    fh.write("\n")
                else:
                    delimiter = {"csv": ",", "tsv": "\t", "txt": " "}[self.format]
                    writer = csv.writer(fh, delimiter=delimiter, lineterminator="\n")
                    writer.writerow(COLUMNS)
                    writer.writerows(self.rows)
        return self.target
