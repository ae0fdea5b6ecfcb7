"""Figures for the targets beyond faces, printed once (wall times are indicative only).

    PYTHONPATH=src python benchmarks/targets.py [--data ../shared/data]

- person (HOG, selfie): detections on vtest.avi (Debian opencv-doc), and the share of
  labelled faces in ../shared/data photos that a person detection covers (a face
  inside a hidden person is hidden too);
- text: boxes on licenseplate_motion.jpg (opencv-doc) and on the face photos (false alarms);
- keep-face: on YouTube Faces clips, how often the reference person is kept
  (reference = first frame of the clip) and how often someone else is wrongly kept.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import av
import cv2
import numpy as np

from veil.boxes import box_iou
from veil.detectors import DetectorOptions, create_detector

OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")


def timed(detector, frames):
    start = time.perf_counter()
    out = [detector.detect([f])[0] for f in frames]
    return out, (time.perf_counter() - start) / max(1, len(frames))


def covered(face, dets) -> bool:
    """The face's centre lies in a person's outline (or box when there is none)."""
    cx, cy = int((face[0] + face[2]) / 2), int((face[1] + face[3]) / 2)
    for i, (x1, y1, x2, y2) in enumerate(dets.xyxy):
        if dets.mask is not None and dets.mask[i].any():
            if dets.mask[i, min(cy, dets.mask.shape[1] - 1), min(cx, dets.mask.shape[2] - 1)]:
                return True
        elif x1 <= cx <= x2 and y1 <= cy <= y2:
            return True
    return False


def hidden_share(shape, dets) -> float:
    """Share of the image inside some person outline or box (the price of hiding whole people)."""
    area = np.zeros(shape, bool)
    for i, (x1, y1, x2, y2) in enumerate(np.round(dets.xyxy).astype(int)):
        if dets.mask is not None and dets.mask[i].any():
            area |= dets.mask[i]
        else:
            area[max(0, y1) : y2, max(0, x1) : x2] = True
    return float(area.mean())


def person_figures(data: Path | None) -> None:
    backends = {"hog": create_detector(DetectorOptions(targets=("person",), person="hog"))}
    try:
        backends["selfie"] = create_detector(DetectorOptions(targets=("person",), person="selfie"))
    except Exception as exc:  # the extra may be missing
        print(f"selfie: unavailable ({exc})")
    if (OPENCV_DATA / "vtest.avi").is_file():
        cap = cv2.VideoCapture(str(OPENCV_DATA / "vtest.avi"))
        frames = []
        while len(frames) < 100:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame)
        for name, det in backends.items():
            dets, spf = timed(det, frames)
            n = [int((d.score >= 0.3).sum()) for d in dets]
            h, w = frames[0].shape[:2]
            print(
                f"vtest.avi {w}x{h}, {len(frames)} frames, person={name}: "
                f"{np.mean(n):.1f} persons/frame (score>=0.3; min {min(n)}, max {max(n)}), "
                f"{1 / spf:.1f} fps"
            )
    if data is None:
        return
    for folder in ("dlib_pascal_faces", "wider_dev"):
        ann = json.loads((data / folder / "annotations.json").read_text())
        for name, det in backends.items():
            hit = total = 0
            secs = 0.0
            hidden = []
            for rel, faces in ann.items():
                image = cv2.imread(str(data / folder / rel))
                (dets,), spf = timed(det, [image])
                secs += spf
                hit += sum(covered(f, dets) for f in faces)
                total += len(faces)
                hidden.append(hidden_share(image.shape[:2], dets))
            print(
                f"{folder}: person={name} covers {hit}/{total} labelled faces ({hit / total:.0%}), "
                f"hides {np.mean(hidden):.0%} of the image on average, "
                f"{secs / len(ann) * 1000:.0f} ms/image"
            )


def text_figures(data: Path | None) -> None:
    det = create_detector(DetectorOptions(targets=("text",)))
    path = OPENCV_DATA / "licenseplate_motion.jpg"
    if path.is_file():
        image = cv2.imread(str(path))
        (dets,), spf = timed(det, [image])
        print(
            f"licenseplate_motion.jpg: {len(dets)} text boxes "
            f"{np.round(dets.xyxy).astype(int).tolist()} "
            f"scores {np.round(dets.score, 2).tolist()}, {spf * 1000:.0f} ms"
        )
    if data is not None:
        ann = json.loads((data / "dlib_pascal_faces" / "annotations.json").read_text())
        counts = [
            len(det.detect([cv2.imread(str(data / "dlib_pascal_faces" / rel))])[0]) for rel in ann
        ]
        print(f"dlib_pascal_faces: {sum(counts)} text boxes over {len(counts)} photos ({counts})")


def person_of(clip: str) -> str:
    """YouTube Faces clips are named PERSON_NAME<n>.mp4."""
    return re.sub(r"\d+\.mp4$", "", clip.split("/")[-1])


def subject_embeddings(faces, path: Path, meta: dict) -> list[np.ndarray | None]:
    """The labelled subject's face descriptor on every 10th frame of a clip (None: not found)."""
    from veil.keep_face import embed

    with av.open(str(path)) as container:
        frames = [
            f.to_ndarray(format="bgr24")
            for i, f in enumerate(container.decode(video=0))
            if i % 10 == 0
        ]
    vecs: list[np.ndarray | None] = []
    for k, image in enumerate(frames):
        truth = np.array(meta["frames"][k * 10]["boxes"][:1], float)
        dets = faces.detect([image])[0]
        if len(dets) == 0 or len(truth) == 0 or box_iou(truth, dets.xyxy).max() < 0.3:
            vecs.append(None)  # not found: hidden anyway, nothing to decide
            continue
        vecs.append(embed(image, dets.xyxy[int(np.argmax(box_iou(truth, dets.xyxy)[0]))][None])[0])
    return vecs


def keep_face_figures(data: Path) -> None:
    from veil.keep_face import MARGIN

    root = data / "ytf"
    ann = json.loads((root / "video_annotations.json").read_text())
    faces = create_detector()
    samples = {clip: subject_embeddings(faces, root / clip, meta) for clip, meta in ann.items()}
    for tol in (0.5, 0.6):
        kept_same = n_same = kept_other = n_other = 0
        for clip, vecs in samples.items():
            ref = vecs[0]
            if ref is None:
                continue
            for v in vecs[1:]:
                if v is not None:
                    n_same += 1
                    kept_same += np.linalg.norm(v - ref) < tol
            for other, ovecs in samples.items():
                if person_of(other) == person_of(clip):
                    continue  # the same person in another clip
                for v in ovecs:
                    if v is not None:
                        n_other += 1
                        kept_other += np.linalg.norm(v - ref) < tol
        print(
            f"keep-face tolerance {tol} (margin {MARGIN} not applied: one face per frame): "
            f"reference person kept in {kept_same}/{n_same} frames "
            f"({kept_same / max(1, n_same):.0%}); another person wrongly kept in "
            f"{kept_other}/{n_other} comparisons ({kept_other / max(1, n_other):.1%})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data"
    )
    args = parser.parse_args()
    data = args.data if args.data.is_dir() else None
    person_figures(data)
    text_figures(data)
    if data is not None:
        keep_face_figures(data)


if __name__ == "__main__":
    main()
