"""The `veil` command line: parse arguments into option dataclasses, call the pipeline.

`veil INPUT...` anonymizes files and folders; `veil COMMAND ...` runs one of the
sub-commands listed in SUBCOMMANDS. No stage logic lives here.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from importlib import import_module
from pathlib import Path

from . import __version__
from .detectors import DetectorOptions
from .detectors.centerface import PRECISIONS
from .detectors.presets import QUALITIES
from .errors import OutputError, ProcessingError, Terminated, VeilError
from .hide import SHAPES, AnonymizeOptions
from .hide.methods import METHODS, parse_color
from .io.export import FORMATS
from .io.paths import DEFAULT_SUFFIX
from .io.video import EncoderOptions
from .tracking import MODES, TrackingOptions

# Sub-command name -> "module:function" taking argv (after the name) and returning an exit code.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": (
        "veil.cli:demo_main",
        "anonymize the bundled sample photo (a quick check that all works)",
    ),
    "serve": (
        "veil.web.server:main",
        "start the local web app (drag and drop in a browser; needs the 'web' extra)",
    ),
    "config": (
        "veil.config:main",
        "show the effective settings (defaults, --config FILE, flags) as TOML",
    ),
    "batch": (
        "veil.batch.command:main",
        "folders, manifests or object storage at scale; resumable; local pool or Ray",
    ),
    "live": (
        "veil.livestream.command:main",
        "anonymize a camera or stream live: preview, record, restream",
    ),
    "eval": (
        "veil.evaluation.command:main",
        "score detection and hiding on labelled data (AP, recall, leaks, fps)",
    ),
}

EXAMPLES = """\
examples:
  veil photo.jpg                       writes photo_anonymized.jpg beside it
  veil video.mp4 -o out.mp4            anonymize a video, keep its audio
  veil photos/ -r -o anonymized/       a folder tree, mirrored into anonymized/
  veil clip.mp4 --method pixelate --shape rect --mask-scale 1.5
  veil clip.mp4 --export csv           also write clip_anonymized.csv (boxes per frame)
  veil clip.mp4 --review               also write clip_anonymized_review/ for human sign-off
  veil demo                            try it on the bundled sample photo
"""


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value


def _score(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def _color(text: str) -> tuple[int, int, int]:
    try:
        return parse_color(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_detector_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("detection")
    group.add_argument(
        "--threshold",
        "-t",
        type=_score,
        default=DetectorOptions.threshold,
        help="minimum detection score; lower finds more faces but also false ones (default %(default)s)",
    )
    group.add_argument(
        "--max-size",
        type=_positive_int,
        default=None,
        metavar="PX",
        help="cap the detector input's longer side (default: native resolution, best for small faces)",
    )
    group.add_argument(
        "--quality",
        choices=QUALITIES,
        default=DetectorOptions.quality,
        help="fast: downscaled input; balanced: native resolution; max: adds a mirrored and an "
        "upscaled pass for tiny faces, about 6x slower (default %(default)s)",
    )
    group.add_argument(
        "--device",
        choices=("cpu", "cuda", "auto"),
        default=DetectorOptions.device,
        help="inference device (default %(default)s)",
    )
    group.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=DetectorOptions.precision,
        help="network arithmetic: auto = float16 on a GPU, float32 on a CPU (default %(default)s)",
    )
    group.add_argument(
        "--threads", type=int, default=0, help="inference threads (default: all cores)"
    )
    group.add_argument(
        "--full-every",
        type=_positive_int,
        default=DetectorOptions.full_every,
        metavar="N",
        help="videos: full-resolution detection every N frames, a coarse pass plus full-resolution "
        "crops around small faces between (default %(default)s; 1 = full resolution on every "
        "frame, about 3x slower)",
    )


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    from .detectors import PERSON_BACKENDS

    group = parser.add_argument_group("targets and filters")
    group.add_argument(
        "--targets",
        default="face",
        metavar="LIST",
        help="what to hide, comma-separated: face, person, text (default %(default)s)",
    )
    group.add_argument(
        "--detector",
        default=DetectorOptions.name,
        metavar="NAME",
        help="face detector: centerface, or onnx:PATH for your own YOLO ONNX model (default %(default)s)",
    )
    group.add_argument(
        "--classes",
        metavar="IDS",
        help="with --detector onnx:PATH: model classes to hide, e.g. 0,2 or 0=person,2=face",
    )
    group.add_argument(
        "--person",
        choices=PERSON_BACKENDS,
        default=DetectorOptions.person,
        help="person detector: hog (boxes, no extra) or selfie (body outline, extra mediapipe)",
    )
    group.add_argument(
        "--min-face-size",
        type=float,
        default=0.0,
        metavar="PX",
        help="leave faces smaller than this visible (longer box side; rejects tiny false positives)",
    )
    group.add_argument(
        "--max-face-size",
        type=float,
        default=None,
        metavar="PX",
        help="leave faces larger than this visible",
    )
    group.add_argument(
        "--min-score",
        action="append",
        default=[],
        metavar="TARGET=S",
        help="score floor per target, e.g. person=0.5 (repeatable)",
    )
    group.add_argument(
        "--include-region",
        action="append",
        default=[],
        metavar="REGION",
        help="hide only detections overlapping this region: x1,y1,x2,y2 or x,y;x,y;x,y "
        "(pixels, or fractions 0..1; repeatable)",
    )
    group.add_argument(
        "--exclude-region",
        action="append",
        default=[],
        metavar="REGION",
        help="leave detections mostly inside this region untouched (same forms; repeatable)",
    )
    group.add_argument(
        "--keep-face",
        metavar="PHOTO",
        help="leave the person in this photo visible; every other face stays hidden (extra reid)",
    )
    group.add_argument(
        "--keep-tolerance",
        type=float,
        default=0.5,
        metavar="D",
        help="--keep-face match distance, lower is stricter (default %(default)s)",
    )


def add_anonymize_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("anonymization")
    group.add_argument(
        "--method",
        "-m",
        choices=METHODS,
        default=AnonymizeOptions.method,
        help="how faces are hidden (default %(default)s)",
    )
    group.add_argument(
        "--shape",
        choices=SHAPES,
        default=AnonymizeOptions.shape,
        help="mask shape (default %(default)s)",
    )
    group.add_argument(
        "--mask-scale",
        type=float,
        default=AnonymizeOptions.mask_scale,
        metavar="X",
        help="grow each box by this factor about its centre (default %(default)s)",
    )
    group.add_argument(
        "--strength",
        type=float,
        default=None,
        metavar="S",
        help="blur: sigma as a fraction of face size (default 0.25); "
        "pixelate: cells across the face (default 6). Weaker settings can be re-identified",
    )
    group.add_argument(
        "--color",
        type=_color,
        default=AnonymizeOptions.color,
        metavar="COLOR",
        help="fill colour: #rrggbb, r,g,b or a name (default black)",
    )
    group.add_argument(
        "--overlay",
        metavar="IMAGE",
        help="image pasted over faces with --method image (PNG alpha kept)",
    )
    group.add_argument(
        "--feather", type=int, default=0, metavar="PX", help="soft edge outside the mask, in pixels"
    )
    group.add_argument("--draw-boxes", action="store_true", help="outline each detection")
    group.add_argument(
        "--draw-scores", action="store_true", help="write each detection's score beside it"
    )


def add_tracking_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("tracking and review (videos)")
    group.add_argument(
        "--tracking",
        choices=MODES,
        default=TrackingOptions.mode,
        help="how faces are followed across frames so a missed detection does not leak: "
        "none (each frame alone), online (hold lost faces, what live streams use), "
        "both (also look ahead, fill gaps and extend tracks; default %(default)s)",
    )
    group.add_argument(
        "--hold",
        type=float,
        default=TrackingOptions.hold,
        metavar="SECONDS",
        help="online: keep hiding a lost face at its predicted place this long (default %(default)s)",
    )
    group.add_argument(
        "--lookahead",
        type=float,
        default=TrackingOptions.lookahead,
        metavar="SECONDS",
        help="both: fill gaps up to this long using later frames; holds that many frames "
        "in memory (default %(default)s)",
    )
    group.add_argument(
        "--extend",
        type=int,
        default=TrackingOptions.extend,
        metavar="FRAMES",
        help="both: also hide a face this many frames before it is first and after it is "
        "last detected (default %(default)s)",
    )
    group.add_argument(
        "--scene-cut-threshold",
        type=float,
        default=TrackingOptions.scene_cut_threshold,
        metavar="X",
        help="colour change (0..1) between frames taken as a hard cut; no box is "
        "carried across a cut; 1 disables (default %(default)s)",
    )
    group.add_argument(
        "--low-threshold",
        type=_score,
        default=TrackingOptions.low_threshold,
        metavar="SCORE",
        help="weakest detection score still used to continue a tracked face (default %(default)s)",
    )
    group.add_argument(
        "--growth",
        type=float,
        default=TrackingOptions.growth,
        metavar="X",
        help="how fast the box of a face not seen grows, in box sizes per second (default %(default)s)",
    )
    group.add_argument(
        "--review",
        action="store_true",
        help="also write OUTPUT-STEM_review/ with review.json (frames that relied on filling or "
        "weak detections), contact_sheet.png (those frames, anonymized, boxes outlined) "
        "and heatmap.png (where faces were)",
    )


def add_encoder_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("video output")
    group.add_argument(
        "--codec", default=EncoderOptions.codec, help="video encoder (default %(default)s)"
    )
    group.add_argument(
        "--crf",
        type=int,
        default=EncoderOptions.crf,
        help="quality, lower is better and larger (default %(default)s)",
    )
    group.add_argument(
        "--preset",
        default=EncoderOptions.preset,
        help="x264/x265 speed preset: ultrafast ... veryslow (default %(default)s)",
    )
    group.add_argument(
        "--no-audio", action="store_true", help="drop the audio instead of copying it"
    )


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("output")
    group.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        help="output file, or folder for several inputs (default: beside each input with a suffix)",
    )
    group.add_argument(
        "--suffix", default=DEFAULT_SUFFIX, help="added to output names (default %(default)s)"
    )
    group.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing outputs instead of picking a free name",
    )
    group.add_argument(
        "-r", "--recursive", action="store_true", help="include subfolders of input folders"
    )
    group.add_argument(
        "--keep-metadata",
        action="store_true",
        help="keep EXIF/GPS and container tags (dropped by default)",
    )
    group.add_argument(
        "--export",
        choices=FORMATS,
        metavar="FORMAT",
        help="also write detections per frame: " + ", ".join(FORMATS),
    )
    group.add_argument("-q", "--quiet", action="store_true", help="no progress bars or summary")


def job_options_from_args(args: argparse.Namespace):
    """Build JobOptions from parsed arguments (any parser that used the add_* helpers)."""
    from .filters import FilterOptions, parse_min_scores, parse_region
    from .pipeline import JobOptions

    get = lambda name, default=None: getattr(args, name, default)  # noqa: E731
    targets = tuple(t.strip() for t in get("targets", "face").split(",") if t.strip())
    return JobOptions(
        detector=DetectorOptions(
            threshold=get("threshold", DetectorOptions.threshold),
            max_size=get("max_size"),
            quality=get("quality", DetectorOptions.quality),
            device=get("device", "cpu"),
            precision=get("precision", DetectorOptions.precision),
            threads=get("threads", 0),
            targets=targets,
            name=get("detector", DetectorOptions.name),
            person=get("person", DetectorOptions.person),
            classes=get("classes"),
            full_every=get("full_every", DetectorOptions.full_every),
        ),
        filters=FilterOptions(
            min_face=get("min_face_size", 0.0),
            max_face=get("max_face_size"),
            min_score=parse_min_scores(get("min_score")),
            include=tuple(parse_region(r) for r in get("include_region", [])),
            exclude=tuple(parse_region(r) for r in get("exclude_region", [])),
            keep_face=get("keep_face"),
            keep_tolerance=get("keep_tolerance", 0.5),
        ),
        anonymize=AnonymizeOptions(
            method=get("method", "blur"),
            shape=get("shape", "ellipse"),
            mask_scale=get("mask_scale", AnonymizeOptions.mask_scale),
            strength=get("strength"),
            color=get("color", (0, 0, 0)),
            overlay_path=get("overlay"),
            feather=get("feather", 0),
            draw_boxes=get("draw_boxes", False),
            draw_scores=get("draw_scores", False),
        ),
        encoder=EncoderOptions(
            codec=get("codec", EncoderOptions.codec),
            crf=get("crf", EncoderOptions.crf),
            preset=get("preset", EncoderOptions.preset),
            keep_audio=not get("no_audio", False),
        ),
        tracking=TrackingOptions(
            mode=get("tracking", TrackingOptions.mode),
            hold=get("hold", TrackingOptions.hold),
            lookahead=get("lookahead", TrackingOptions.lookahead),
            extend=get("extend", TrackingOptions.extend),
            scene_cut_threshold=get("scene_cut_threshold", TrackingOptions.scene_cut_threshold),
            low_threshold=get("low_threshold", TrackingOptions.low_threshold),
            growth=get("growth", TrackingOptions.growth),
        ),
        keep_metadata=get("keep_metadata", False),
        overwrite=get("overwrite", False),
        suffix=get("suffix", DEFAULT_SUFFIX),
        recursive=get("recursive", False),
        export_format=get("export"),
        review=get("review", False),
    )


def build_parser() -> argparse.ArgumentParser:
    commands = "\n".join(f"  veil {name:<8} {help_}" for name, (_, help_) in SUBCOMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="veil",
        description="Anonymize faces in images and videos: detect, track, hide, strip metadata.",
        epilog=EXAMPLES + "\ncommands (veil COMMAND --help for each):\n" + commands,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="image or video files, or folders"
    )
    parser.add_argument("--version", action="version", version=f"veil {__version__}")
    parser.add_argument(
        "--config", metavar="FILE", help="read settings from a TOML file (flags given here win)"
    )
    add_output_arguments(parser)
    add_detector_arguments(parser)
    add_target_arguments(parser)
    add_anonymize_arguments(parser)
    add_tracking_arguments(parser)
    add_encoder_arguments(parser)
    return parser


class ProgressBars:
    """A files bar when there are several inputs, and a frames bar for each video."""

    def __init__(self, quiet: bool, files: int = 1) -> None:
        self.quiet = quiet
        self._files = None
        self._frames = None
        self._name: str | None = None
        if not quiet and files > 1:
            from tqdm import tqdm

            self._files = tqdm(
                total=files, desc="files", unit="file", file=sys.stderr, dynamic_ncols=True
            )

    def __call__(self, name: str, done: int, total: int | None) -> None:
        if self.quiet or total == 1:
            return
        from tqdm import tqdm

        if name != self._name:
            self._close_frames()
            self._name = name
            self._frames = tqdm(
                total=total,
                desc=Path(name).name[:30],
                unit="frame",
                leave=False,
                file=sys.stderr,
                dynamic_ncols=True,
                position=1 if self._files else 0,
            )
        self._frames.update(done - self._frames.n)

    def file_done(self) -> None:
        self._close_frames()
        if self._files is not None:
            self._files.update(1)

    def _close_frames(self) -> None:
        if self._frames is not None:
            self._frames.close()
            self._frames = None
            self._name = None

    def close(self) -> None:
        self._close_frames()
        if self._files is not None:
            self._files.close()


def _summary_line(r) -> str:
    extra = f", {r.frames} frames at {r.fps:.1f} fps" if r.kind == "video" else ""
    return f"{r.source} -> {r.output} ({r.boxes} detections{extra})"


def anonymize_main(argv: Sequence[str]) -> int:
    """Anonymize every input; with several inputs a bad file is reported and the rest go on."""
    from .config import parse_with_config
    from .pipeline import Pipeline

    args = parse_with_config(build_parser(), argv)
    pipeline = Pipeline(job_options_from_args(args))
    planned = pipeline.plan(args.inputs, args.output)
    bars = ProgressBars(args.quiet, len(planned))
    pipeline.progress = bars
    failures: list[VeilError] = []
    lines = []
    try:
        for source, target in planned:
            try:
                lines.append(_summary_line(pipeline.process(source, target)))
            except VeilError as exc:
                if len(planned) == 1 or exc.exit_code == 130:
                    raise
                failures.append(exc)
                lines.append(f"veil: error: {exc}")
            bars.file_done()
    finally:
        bars.close()
    if not args.quiet or failures:
        print(
            "\n".join(lines if not args.quiet else [f"veil: error: {f}" for f in failures]),
            file=sys.stderr,
        )
    if failures:
        print(f"veil: {len(failures)} of {len(planned)} inputs failed", file=sys.stderr)
        return failures[-1].exit_code
    return 0


def demo_main(argv: Sequence[str]) -> int:
    """Anonymize the bundled photo (NASA astronaut portrait, public domain)."""
    from .pipeline import Pipeline

    parser = argparse.ArgumentParser(prog="veil demo", description=demo_main.__doc__)
    parser.add_argument(
        "-o",
        "--output",
        default="astronaut_anonymized.jpg",
        help="where to write (default %(default)s)",
    )
    add_anonymize_arguments(parser)
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)
    sample = Path(__file__).parent / "assets" / "astronaut.jpg"
    options = job_options_from_args(args)
    result = Pipeline(dataclasses.replace(options, overwrite=True)).process(
        sample, Path(args.output)
    )
    if not args.quiet:
        print(f"{result.boxes} face(s) found; anonymized copy written to {result.output}")
    return 0


def _resolve(target: str) -> Callable[[Sequence[str]], int]:
    module, func = target.split(":")
    return getattr(import_module(module), func)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    with _terminate_on_sigterm():
        try:
            if argv and argv[0] in SUBCOMMANDS:
                return int(_resolve(SUBCOMMANDS[argv[0]][0])(argv[1:]) or 0)
            return anonymize_main(argv)
        except VeilError as exc:
            print(f"veil: error: {exc}", file=sys.stderr)
            return exc.exit_code
        except Terminated:
            print("veil: terminated; partial outputs were removed", file=sys.stderr)
            return Terminated.exit_code
        except KeyboardInterrupt:
            print("veil: interrupted; partial outputs were removed", file=sys.stderr)
            return 130
        except MemoryError:
            print(
                "veil: error: out of memory; partial outputs were removed (lower max_pixels, "
                "--max-size or the number of workers)",
                file=sys.stderr,
            )
            return ProcessingError.exit_code
        except OSError as exc:  # what the system refused where no module said more
            where = f"{exc.filename}: " if exc.filename else ""
            print(f"veil: error: {where}{exc.strerror or exc}", file=sys.stderr)
            return OutputError.exit_code


@contextlib.contextmanager
def _terminate_on_sigterm() -> Iterator[None]:
    """SIGTERM raises Terminated in the main thread while a command runs (Ctrl-C's clean-up)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
