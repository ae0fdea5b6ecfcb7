"""The `veil` command line: parse arguments into option dataclasses, call the pipeline.

`veil INPUT...` anonymizes files and folders; `veil COMMAND ...` runs one of the
sub-commands listed in SUBCOMMANDS. No stage logic lives here.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from importlib import import_module
from pathlib import Path
from typing import Callable, Sequence

from . import __version__
from .hide import SHAPES, AnonymizeOptions
from .hide.methods import METHODS, parse_color
from .detectors import DetectorOptions
from .errors import OptionError, VeilError
from .io.export import FORMATS
from .io.paths import DEFAULT_SUFFIX
from .io.video import EncoderOptions
from .tracking import MODES, TrackingOptions

# Sub-command name -> "module:function" taking argv (after the name) and returning an exit code.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("veil.cli:demo_main", "anonymize the bundled sample photo (a quick check that all works)"),
}

EXAMPLES = """\
examples:
  veil photo.jpg                       writes photo_anonymized.jpg beside it
  veil video.mp4 -o out.mp4            anonymize a video, keep its audio
  veil photos/ -r -o anonymized/       a folder tree, mirrored into anonymized/
  veil clip.mp4 --method pixelate --shape rect --mask-scale 1.5
  veil clip.mp4 --export csv           also write clip_anonymized.csv (boxes per frame)
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
    group.add_argument("--threshold", "-t", type=_score, default=DetectorOptions.threshold,
                       help="minimum detection score; lower finds more faces but also false ones (default %(default)s)")
    group.add_argument("--max-size", type=_positive_int, default=None, metavar="PX",
                       help="cap the detector input's longer side (default: native resolution, best for small faces)")
    group.add_argument("--device", choices=("cpu", "cuda", "auto"), default=DetectorOptions.device,
                       help="inference device (default %(default)s)")
    group.add_argument("--threads", type=int, default=0, help="inference threads (default: all cores)")
    group.add_argument("--full-every", type=_positive_int, default=DetectorOptions.full_every, metavar="N",
                       help="videos: full-resolution detection every N frames, a coarse pass plus full-resolution "
                            "crops around small faces between (8 is 3-4x faster but can miss small faces; "
                            "default %(default)s = full resolution on every frame)")


def add_anonymize_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("anonymization")
    group.add_argument("--method", "-m", choices=METHODS, default=AnonymizeOptions.method,
                       help="how faces are hidden (default %(default)s)")
    group.add_argument("--shape", choices=SHAPES, default=AnonymizeOptions.shape, help="mask shape (default %(default)s)")
    group.add_argument("--mask-scale", type=float, default=AnonymizeOptions.mask_scale, metavar="X",
                       help="grow each box by this factor about its centre (default %(default)s)")
    group.add_argument("--strength", type=float, default=None, metavar="S",
                       help="blur: sigma as a fraction of face size (default 0.25); "
                            "pixelate: cells across the face (default 6). Weaker settings can be re-identified")
    group.add_argument("--color", type=_color, default=AnonymizeOptions.color, metavar="COLOR",
                       help="fill colour: #rrggbb, r,g,b or a name (default black)")
    group.add_argument("--overlay", metavar="IMAGE", help="image pasted over faces with --method image (PNG alpha kept)")
    group.add_argument("--feather", type=int, default=0, metavar="PX", help="soft edge outside the mask, in pixels")
    group.add_argument("--draw-boxes", action="store_true", help="outline each detection")
    group.add_argument("--draw-scores", action="store_true", help="write each detection's score beside it")


def add_tracking_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("tracking (videos)")
    group.add_argument("--tracking", choices=MODES, default=TrackingOptions.mode,
                       help="how detections are carried across frames (default %(default)s)")


def add_encoder_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("video output")
    group.add_argument("--codec", default=EncoderOptions.codec, help="video encoder (default %(default)s)")
    group.add_argument("--crf", type=int, default=EncoderOptions.crf,
                       help="quality, lower is better and larger (default %(default)s)")
    group.add_argument("--preset", default=EncoderOptions.preset,
                       help="x264/x265 speed preset: ultrafast ... veryslow (default %(default)s)")
    group.add_argument("--no-audio", action="store_true", help="drop the audio instead of copying it")


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("output")
    group.add_argument("-o", "--output", metavar="OUT",
                       help="output file, or folder for several inputs (default: beside each input with a suffix)")
    group.add_argument("--suffix", default=DEFAULT_SUFFIX, help="added to output names (default %(default)s)")
    group.add_argument("--overwrite", action="store_true", help="replace existing outputs instead of picking a free name")
    group.add_argument("-r", "--recursive", action="store_true", help="include subfolders of input folders")
    group.add_argument("--keep-metadata", action="store_true",
                       help="keep EXIF/GPS and container tags (dropped by default)")
    group.add_argument("--export", choices=FORMATS, metavar="FORMAT",
                       help="also write detections per frame: " + ", ".join(FORMATS))
    group.add_argument("-q", "--quiet", action="store_true", help="no progress bars or summary")


def job_options_from_args(args: argparse.Namespace):
    """Build JobOptions from parsed arguments (any parser that used the add_* helpers)."""
    from .pipeline import JobOptions

    get = lambda name, default=None: getattr(args, name, default)  # noqa: E731
    return JobOptions(
        detector=DetectorOptions(threshold=get("threshold", DetectorOptions.threshold), max_size=get("max_size"),
                                 device=get("device", "cpu"), threads=get("threads", 0),
                                 full_every=get("full_every", DetectorOptions.full_every)),
        anonymize=AnonymizeOptions(method=get("method", "blur"), shape=get("shape", "ellipse"),
                                   mask_scale=get("mask_scale", AnonymizeOptions.mask_scale),
                                   strength=get("strength"), color=get("color", (0, 0, 0)),
                                   overlay_path=get("overlay"), feather=get("feather", 0),
                                   draw_boxes=get("draw_boxes", False), draw_scores=get("draw_scores", False)),
        encoder=EncoderOptions(codec=get("codec", EncoderOptions.codec), crf=get("crf", EncoderOptions.crf),
                               preset=get("preset", EncoderOptions.preset), keep_audio=not get("no_audio", False)),
        tracking=TrackingOptions(mode=get("tracking", TrackingOptions.mode)),
        keep_metadata=get("keep_metadata", False),
        overwrite=get("overwrite", False),
        suffix=get("suffix", DEFAULT_SUFFIX),
        recursive=get("recursive", False),
        export_format=get("export"),
    )


def build_parser() -> argparse.ArgumentParser:
    commands = "\n".join(f"  veil {name:<8} {help_}" for name, (_, help_) in SUBCOMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="veil",
        description="Anonymize faces in images and videos: detect, track, hide, strip metadata.",
        epilog=EXAMPLES + "\ncommands (veil COMMAND --help for each):\n" + commands,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image or video files, or folders")
    parser.add_argument("--version", action="version", version=f"veil {__version__}")
    add_output_arguments(parser)
    add_detector_arguments(parser)
    add_anonymize_arguments(parser)
    add_tracking_arguments(parser)
    add_encoder_arguments(parser)
    return parser


class ProgressBars:
    """tqdm bars, one per video; images advance one shared bar."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self._bar = None
        self._name: str | None = None

    def __call__(self, name: str, done: int, total: int | None) -> None:
        if self.quiet:
            return
        from tqdm import tqdm

        if name != self._name:
            self.close()
            self._name = name
            self._bar = tqdm(total=total, desc=Path(name).name[:30], unit="frame", leave=False, file=sys.stderr,
                             dynamic_ncols=True)
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _summary(results) -> str:
    lines = []
    for r in results:
        extra = f", {r.frames} frames at {r.fps:.1f} fps" if r.kind == "video" else ""
        lines.append(f"{r.source} -> {r.output} ({r.boxes} detections{extra})")
    return "\n".join(lines)


def anonymize_main(argv: Sequence[str]) -> int:
    from .pipeline import Pipeline

    args = build_parser().parse_args(argv)
    options = job_options_from_args(args)
    bars = ProgressBars(args.quiet)
    pipeline = Pipeline(options, progress=bars)
    try:
        results = pipeline.run(args.inputs, args.output)
    finally:
        bars.close()
    if not args.quiet:
        print(_summary(results), file=sys.stderr)
    return 0


def demo_main(argv: Sequence[str]) -> int:
    """Anonymize the bundled photo (NASA astronaut portrait, public domain)."""
    from .pipeline import Pipeline

    parser = argparse.ArgumentParser(prog="veil demo", description=demo_main.__doc__)
    parser.add_argument("-o", "--output", default="astronaut_anonymized.jpg", help="where to write (default %(default)s)")
    add_anonymize_arguments(parser)
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)
    sample = Path(__file__).parent / "assets" / "astronaut.jpg"
    options = job_options_from_args(args)
    result = Pipeline(dataclasses.replace(options, overwrite=True)).process(sample, Path(args.output))
    if not args.quiet:
        print(f"{result.boxes} face(s) found; anonymized copy written to {result.output}")
    return 0


def _resolve(target: str) -> Callable[[Sequence[str]], int]:
    module, func = target.split(":")
    return getattr(import_module(module), func)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in SUBCOMMANDS:
            return int(_resolve(SUBCOMMANDS[argv[0]][0])(argv[1:]) or 0)
        return anonymize_main(argv)
    except VeilError as exc:
        print(f"veil: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("veil: interrupted; partial outputs were removed", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
