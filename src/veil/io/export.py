"""Per-frame detection export: csv, tsv, txt (space separated) or json, and reading it back.

One row per box: time in milliseconds, frame index, box corners, score,
class and track id (-1 when untracked). Written atomically like every output.

The json form is also an input: `veil VIDEO --detections FILE` renders from an exported and
edited file instead of detecting again. Its format is the JSON Schema in
assets/detections.schema.json (docs/detections.schema.json is the same file); `read_rows`
checks a file against it and names the first bad field in a one-line `InputError`.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..detections import CLASS_NAMES, Detections
from ..errors import InputError, OptionError
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
        if self.format == "json":
            return write_rows(self.target, [dict(zip(COLUMNS, row)) for row in self.rows])
        with atomic_output(self.target) as tmp:
            with open(tmp, "w", newline="", encoding="utf-8") as fh:
                delimiter = {"csv": ",", "tsv": "\t", "txt": " "}[self.format]
                writer = csv.writer(fh, delimiter=delimiter, lineterminator="\n")
                writer.writerow(COLUMNS)
                writer.writerows(self.rows)
        return self.target


def write_rows(target: Path, rows: list[dict[str, Any]]) -> Path:
    """Save detection rows (the json export's objects) atomically, as the export does."""
    with atomic_output(target) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=1)
            fh.write("\n")
    return target


@cache
def schema() -> dict[str, Any]:
    """The JSON Schema of a detections file (draft 2020-12)."""
    text = (resources.files("veil") / "assets" / "detections.schema.json").read_text("utf-8")
    return json.loads(text)


_TYPES: dict[str, tuple[type, ...]] = {
    "array": (list,),
    "object": (dict,),
    "integer": (int,),
    "number": (int, float),
    "string": (str,),
    "boolean": (bool,),
}


def _type_ok(value: Any, wanted: str) -> bool:
    if isinstance(value, bool) and wanted != "boolean":
        return False  # JSON true is not the number 1
    return isinstance(value, _TYPES[wanted])


def _problem(value: Any, rule: dict[str, Any]) -> str | None:
    """Why value breaks one property's rule (type, minimum, maximum), or None."""
    if not _type_ok(value, rule["type"]):
        return (
            f"must be {'an' if rule['type'][0] in 'aeiou' else 'a'} {rule['type']}, not {value!r}"
        )
    if "minimum" in rule and value < rule["minimum"]:
        return f"must be at least {rule['minimum']}, not {value!r}"
    if "maximum" in rule and value > rule["maximum"]:
        return f"must be at most {rule['maximum']}, not {value!r}"
    return None


def validate_rows(rows: Any, name: str = "detections") -> list[dict[str, Any]]:
    """rows checked against the schema (the subset it uses: type, required, properties,
    additionalProperties, minimum, maximum) and x1 <= x2, y1 <= y2, which a schema cannot say.

    Raises InputError naming the first bad item and field.
    """
    item = schema()["items"]
    if not isinstance(rows, list):
        raise InputError(f"{name}: must be a JSON array of boxes (the --export json format)")
    for i, row in enumerate(rows):
        where = f"{name}: box {i}"
        if not isinstance(row, dict):
            raise InputError(f"{where}: must be an object, not {row!r}")
        for key in item["required"]:
            if key not in row:
                raise InputError(f"{where}: field '{key}' is missing")
        for key, value in row.items():
            rule = item["properties"].get(key)
            if rule is None:
                raise InputError(f"{where}: field '{key}' is not part of the format")
            if (problem := _problem(value, rule)) is not None:
                raise InputError(f"{where}: field '{key}' {problem}")
        for low, high in (("x1", "x2"), ("y1", "y2")):
            if row[high] < row[low]:
                raise InputError(f"{where}: field '{high}' must not be less than '{low}'")
    return rows


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a detections file, checked against the schema."""
    try:
        rows = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read the detections file ({exc.strerror})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a JSON detections file ({exc})") from None
    return validate_rows(rows, str(path))


def shown_tracks(rows: list[dict[str, Any]]) -> set[int]:
    """Track ids marked "hide": false on any of their boxes (a track is shown whole or not)."""
    return {r.get("track_id", -1) for r in rows if r.get("hide") is False} - {-1}


def detections_by_frame(rows: list[dict[str, Any]]) -> dict[int, Detections]:
    """The boxes to hide, per frame index: rows marked "hide": false and their tracks left out."""
    shown = shown_tracks(rows)
    names = {v: k for k, v in CLASS_NAMES.items()}
    per_frame: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        track = row.get("track_id", -1)
        if row.get("hide", True) and track not in shown:
            per_frame[row["frame"]].append(row)
    out = {}
    for index, boxes in per_frame.items():
        classes = [r.get("class", "face") for r in boxes]
        out[index] = Detections(
            np.array([[r["x1"], r["y1"], r["x2"], r["y2"]] for r in boxes], np.float32),
            score=[r.get("score", 0.0) for r in boxes],
            class_id=[names.get(c, int(c) if c.lstrip("-").isdigit() else 0) for c in classes],
            track_id=[r.get("track_id", -1) for r in boxes],
        )
    return out
