"""How strong must hiding be before dlib's face recognition stops matching the face?

Prints a markdown table: for each method and setting, the embedding distance
between original and anonymized face (dlib's same-person threshold is 0.6), how
often dlib's detector still finds a face, and how often the face is re-identified
(found and closer than 0.6). Faces: the scikit-image astronaut plus every labelled
face of an image folder (default ../shared/data/dlib_pascal_faces).

    python benchmarks/reid_sweep.py [FOLDER] [--part settings|masks|all]

The `masks` part repeats fill and the default blur (with the Wiener attack) at
several mask scales: what is left outside the mask (hair, ears, jaw line) is
what keeps a hidden face near its original in embedding space.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from veil.evaluation.reid import SAME_PERSON, Embedder, check, labelled_faces

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from veil.hide import AnonymizeOptions
from veil.hide.methods import DEFAULT_BLUR_STRENGTH, DEFAULT_PIXEL_CELLS

from media import astronaut_face, default_overlay  # noqa: E402  (the tests' photo and overlay)

BLUR = (0.03, 0.05, 0.08, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4)
CELLS = (16, 12, 10, 8, 6, 5, 4)
MASK_SCALES = (1.0, 1.15, 1.25, 1.35)  # boxes x 1.0, 1.3, 1.5, 1.7 about the centre
HEADER = (
    "| method, setting | min distance | median distance | distance <= 0.6 | dlib finds a face "
    "| re-identified |\n"
    "|---|---|---|---|---|---|"
)


def row(label: str, attempts) -> str:
    d = np.array([a.distance for a in attempts])
    found = np.mean([a.detected for a in attempts])
    close = np.mean(d <= SAME_PERSON)
    reid = np.mean([a.reidentified for a in attempts])
    return (
        f"| {label} | {d.min():.3f} | {np.median(d):.3f} | {100 * close:.0f}% | {100 * found:.0f}% "
        f"| {100 * reid:.0f}% |"
    )


def masks(embedder: Embedder, faces) -> None:
    print(HEADER)
    for scale in MASK_SCALES:
        print(
            row(
                f"fill, box x {2 * scale - 1:g}",
                check(embedder, faces, AnonymizeOptions(method="fill", mask_scale=scale)),
            )
        )
        blur = AnonymizeOptions(method="blur", mask_scale=scale)
        print(
            row(
                f"blur default + Wiener, box x {2 * scale - 1:g}",
                check(embedder, faces, blur, wiener=True),
            ),
            flush=True,
        )


def settings(embedder: Embedder, faces) -> None:
    print(HEADER)
    for strength in BLUR:
        options = AnonymizeOptions(method="blur", strength=strength)
        print(row(f"blur sigma {strength} x face", check(embedder, faces, options)), flush=True)
        print(
            row(
                f"blur sigma {strength} x face + Wiener",
                check(embedder, faces, options, wiener=True),
            ),
            flush=True,
        )
    for cells in CELLS:
        options = AnonymizeOptions(method="pixelate", strength=cells)
        print(row(f"pixelate {cells} cells", check(embedder, faces, options)), flush=True)
    print(row("fill", check(embedder, faces, AnonymizeOptions(method="fill"))))
    with tempfile.TemporaryDirectory() as tmp:
        overlay = default_overlay(str(Path(tmp) / "overlay.png"))
        print(
            row(
                "image overlay",
                check(embedder, faces, AnonymizeOptions(method="image", overlay_path=overlay)),
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "folder", nargs="?", type=Path, default=Path("../shared/data/dlib_pascal_faces")
    )
    parser.add_argument("--part", choices=("settings", "masks", "all"), default="all")
    args = parser.parse_args()
    embedder = Embedder()
    faces = [astronaut_face(embedder)]
    if (args.folder / "annotations.json").is_file():
        faces += labelled_faces(embedder, args.folder)
    print(
        f"{len(faces)} faces; defaults: blur {DEFAULT_BLUR_STRENGTH}, "
        f"pixelate {DEFAULT_PIXEL_CELLS} cells\n"
    )
    if args.part in ("settings", "all"):
        settings(embedder, faces)
    if args.part in ("masks", "all"):
        masks(embedder, faces)


if __name__ == "__main__":
    main()
