"""A review report for human sign-off on an anonymized video or image.

A reviewer should look first where veil was least sure: boxes the detector did
not see in that frame (filled in by tracking: score 0) and boxes kept from weak
detections (score under the threshold). The report holds:
- review.json: those frames and boxes, and per track how many of its frames
  were detected, weak or filled;
- contact_sheet.png: thumbnails of those frames AFTER anonymization with the
  hidden area outlined (orange: filled, yellow: weak, green: detected). Original
  pixels are never shown: the report must be as safe to share as the video;
- heatmap.png: where face centres were over the whole video, drawn over an
  anonymized frame.

Memory stays bounded on long videos: the sheet keeps at most MAX_SHEET_FRAMES
thumbnails, halving its sampling rate whenever it fills up; the heatmap is a
small accumulation grid.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..boxes import scale_box
from ..detections import Detections
from ..frame import Frame
from ..io.paths import atomic_output

MAX_SHEET_FRAMES = 48
THUMB_WIDTH = 320
SHEET_COLUMNS = 6
HEAT_SIDE = 256
FILLED, WEAK, DETECTED = (0, 165, 255), (0, 255, 255), (0, 200, 0)
REVIEW_FILES = ("review.json", "contact_sheet.png", "heatmap.png")


def review_folder(output: Path) -> Path:
    """`<output stem>_review/` beside the output."""
    return output.with_name(f"{output.stem}_review")


@dataclass
class TrackStats:
    first_frame: int
    first_time: float
    last_frame: int = 0
    last_time: float = 0.0
    detected: list[int] = field(default_factory=list)
    weak: int = 0
    filled: list[int] = field(default_factory=list)


def _reason(score: float, threshold: float) -> str | None:
    if score <= 0:
        return "filled"
    if score < threshold:
        return "low_confidence"
    return None


def _fill_kind(frame: int, detected: list[int]) -> str:
    """interpolated (detections on both sides), extended_before or extended_after."""
    if not detected:
        return "filled"
    if detected[0] < frame < detected[-1]:
        return "interpolated"
    return "extended_before" if frame < detected[0] else "extended_after"


class ReviewReport:
    """Collects anonymized frames and their detections; `write()` saves the folder."""

    def __init__(
        self,
        folder: Path,
        threshold: float,
        mask_scale: float = 1.0,
        source: Path | None = None,
        output: Path | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.threshold = threshold
        self.mask_scale = mask_scale
        self.source, self.output = source, output
        self.frames = 0
        self.tracks: dict[int, TrackStats] = {}
        self.flagged: list[dict] = []
        self.sheet: list[tuple[int, np.ndarray]] = []
        self.sheet_stride = 1
        self.flagged_seen = 0
        self.heat: np.ndarray | None = None
        self.background: np.ndarray | None = None
        self.boxes = 0

    def add(self, frame: Frame, detections: Detections) -> None:
        """One anonymized frame (its pixels must already be hidden) and the boxes used on it."""
        self.frames += 1
        self.boxes += len(detections)
        self._accumulate_heat(frame, detections)
        flagged_boxes = []
        for i in range(len(detections)):
            score = float(detections.score[i])
            tid = int(detections.track_id[i])
            reason = _reason(score, self.threshold)
            if tid >= 0:
                stats = self.tracks.setdefault(tid, TrackStats(frame.index, frame.time))
                stats.last_frame, stats.last_time = frame.index, frame.time
                if reason == "filled":
                    stats.filled.append(frame.index)
                else:
                    stats.detected.append(frame.index)
                    stats.weak += reason == "low_confidence"
            if reason:
                flagged_boxes.append(
                    {
                        "track_id": tid,
                        "box": [round(float(v), 1) for v in detections.xyxy[i]],
                        "score": round(score, 4),
                        "reason": reason,
                    }
                )
        if flagged_boxes:
            self.flagged.append(
                {"frame": frame.index, "time": round(frame.time, 4), "boxes": flagged_boxes}
            )
            self._sample_for_sheet(frame, detections)

    def _accumulate_heat(self, frame: Frame, detections: Detections) -> None:
        h, w = frame.height, frame.width
        scale = HEAT_SIDE / max(h, w)
        gh, gw = max(1, round(h * scale)), max(1, round(w * scale))
        if self.heat is None:
            self.heat = np.zeros((gh, gw), np.float64)
        if self.background is None or frame.index % 30 == 0:
            self.background = cv2.resize(frame.image, (gw, gh), interpolation=cv2.INTER_AREA)
        if len(detections):
            centre = detections.center
            xs = np.clip(
                (centre[:, 0] / w * self.heat.shape[1]).astype(int), 0, self.heat.shape[1] - 1
            )
            ys = np.clip(
                (centre[:, 1] / h * self.heat.shape[0]).astype(int), 0, self.heat.shape[0] - 1
            )
            np.add.at(self.heat, (ys, xs), 1.0)

    def _sample_for_sheet(self, frame: Frame, detections: Detections) -> None:
        self.flagged_seen += 1
        if (self.flagged_seen - 1) % self.sheet_stride:
            return
        self.sheet.append((frame.index, self._thumbnail(frame, detections)))
        if len(self.sheet) > MAX_SHEET_FRAMES:
            self.sheet = self.sheet[::2]
            self.sheet_stride *= 2

    def _thumbnail(self, frame: Frame, detections: Detections) -> np.ndarray:
        scale = THUMB_WIDTH / frame.width
        th = max(1, round(frame.height * scale))
        thumb = cv2.resize(frame.image, (THUMB_WIDTH, th), interpolation=cv2.INTER_AREA)
        boxes = scale_box(detections.xyxy, self.mask_scale) * scale
        for box, score in zip(np.round(boxes).astype(int), detections.score):
            reason = _reason(float(score), self.threshold)
            colour = FILLED if reason == "filled" else WEAK if reason else DETECTED
            cv2.rectangle(thumb, (int(box[0]), int(box[1])), (int(box[2]), int(box[3])), colour, 2)
        label = f"frame {frame.index}  {frame.time:.2f}s"
        cv2.rectangle(thumb, (0, th - 18), (THUMB_WIDTH, th), (0, 0, 0), -1)
        cv2.putText(
            thumb,
            label,
            (4, th - 5),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
        return thumb

    # -- output ----------------------------------------------------------------------------
    def contact_sheet(self) -> np.ndarray:
        if not self.sheet:
            sheet = np.full((60, 2 * THUMB_WIDTH, 3), 32, np.uint8)
            cv2.putText(
                sheet,
                "no filled or low-confidence frames",
                (10, 36),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.6,
                (255, 255, 255),
                1,
                cv2.LINE_AA,
            )
            return sheet
        cell_h = max(t.shape[0] for _, t in self.sheet)
        cols = min(SHEET_COLUMNS, len(self.sheet))
        rows = -(-len(self.sheet) // cols)
        sheet = np.full((rows * (cell_h + 4), cols * (THUMB_WIDTH + 4), 3), 32, np.uint8)
        for n, (_, thumb) in enumerate(self.sheet):
            y, x = (n // cols) * (cell_h + 4), (n % cols) * (THUMB_WIDTH + 4)
            sheet[y : y + thumb.shape[0], x : x + THUMB_WIDTH] = thumb
        return sheet

    def heatmap(self) -> np.ndarray:
        if self.heat is None:
            return np.zeros((HEAT_SIDE, HEAT_SIDE, 3), np.uint8)
        smooth = cv2.GaussianBlur(self.heat.astype(np.float32), (0, 0), max(self.heat.shape) / 40)
        peak = float(smooth.max())
        level = (
            (smooth / peak * 255).astype(np.uint8) if peak > 0 else np.zeros(smooth.shape, np.uint8)
        )
        colour = cv2.applyColorMap(level, cv2.COLORMAP_JET)
        grey = cv2.cvtColor(cv2.cvtColor(self.background, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
        alpha = (level.astype(np.float32) / 255 * 0.7)[:, :, None]
        out = grey.astype(np.float32) * (1 - alpha) + colour.astype(np.float32) * alpha
        return np.round(out).astype(np.uint8)

    def summary(self) -> dict:
        tracks = []
        for tid, s in sorted(self.tracks.items()):
            detected = sorted(s.detected)
            kinds: dict[str, int] = defaultdict(int)
            for f in s.filled:
                kinds[_fill_kind(f, detected)] += 1
            tracks.append(
                {
                    "track_id": tid,
                    "first_frame": s.first_frame,
                    "last_frame": s.last_frame,
                    "first_time": round(s.first_time, 4),
                    "last_time": round(s.last_time, 4),
                    "detected_frames": len(detected),
                    "low_confidence_frames": s.weak,
                    "filled_frames": len(s.filled),
                    "filled_by": dict(kinds),
                    "needs_review": bool(s.filled or s.weak),
                }
            )
        for entry in self.flagged:
            for box in entry["boxes"]:
                if box["reason"] == "filled" and box["track_id"] in self.tracks:
                    box["reason"] = _fill_kind(
                        entry["frame"], sorted(self.tracks[box["track_id"]].detected)
                    )
        return {
            "source": str(self.source) if self.source else None,
            "output": str(self.output) if self.output else None,
            "frames": self.frames,
            "boxes": self.boxes,
            "threshold": self.threshold,
            "frames_to_review": len(self.flagged),
            "frames_with_filled_boxes": sum(
                any(b["score"] <= 0 for b in e["boxes"]) for e in self.flagged
            ),
            "frames_with_low_confidence": sum(
                any(b["score"] > 0 for b in e["boxes"]) for e in self.flagged
            ),
            "tracks": tracks,
            "review_frames": self.flagged,
            "contact_sheet": {
                "file": "contact_sheet.png",
                "frames": [i for i, _ in self.sheet],
                "sampled_every": self.sheet_stride,
            },
            "heatmap": "heatmap.png",
        }

    def write(self) -> Path:
        summary = self.summary()
        with atomic_output(self.folder / "review.json") as tmp:
            tmp.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
        for name, image in (
            ("contact_sheet.png", self.contact_sheet()),
            ("heatmap.png", self.heatmap()),
        ):
            _, data = cv2.imencode(".png", image)
            with atomic_output(self.folder / name) as tmp:
                tmp.write_bytes(data.tobytes())
        return self.folder
