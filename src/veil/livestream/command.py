"""`veil live SOURCE`: parse the command line, open the stream, feed the sinks until stopped."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from ..errors import OptionError
from ..options import CommandParser, build, option
from ..pipeline import JobOptions
from .realtime import LiveOptions, open_live

EXAMPLES = """\
examples:
  veil live 0 --preview                              webcam in a window (q quits)
  veil live rtsp://cam.local/stream -o cam.mp4       record an IP camera, anonymized
  veil live udp://0.0.0.0:5000 -o udp://127.0.0.1:6000 --stats
  veil live /dev/video2 -o rec.mkv -o rtmp://server/live/key --detector blazeface
"""

sink_option = partial(option, group="output", commands=("live",))
source_option = partial(option, group="real time", commands=("live",))


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"expected KEY=VALUE, got {text!r}")
    return key, value


@dataclass(frozen=True)
class LiveCommand:
    """Where `veil live` sends the anonymized stream and how it opens the source."""

    outputs: tuple[str, ...] = sink_option(
        (),
        "-o",
        "--output",
        repeat=True,
        metavar="FILE|URL",
        help="record to FILE (written on stop) or restream to URL (udp://, srt://, rtsp://, "
        "rtmp://); repeatable",
    )
    preview: bool = sink_option(False, "--preview", help="show a window (q quits)")
    restream_format: str | None = sink_option(
        None,
        "--restream-format",
        metavar="FMT",
        help="FFmpeg muxer for restream URLs (default from the scheme)",
    )
    input_format: str | None = source_option(
        None,
        "--input-format",
        metavar="FMT",
        help="FFmpeg demuxer (v4l2, dshow, avfoundation, mpegts...)",
    )
    input_options: tuple[tuple[str, str], ...] = source_option(
        (),
        "--input-option",
        repeat=True,
        type=_pair,
        show="=".join,
        metavar="KEY=VALUE",
        help="FFmpeg demuxer/protocol option, e.g. video_size=1280x720; repeatable",
    )
    stats: bool = source_option(False, "--stats", help="print statistics every second")

    def __post_init__(self) -> None:
        if not self.outputs and not self.preview:
            raise OptionError(
                "nothing to do: give -o FILE to record, -o URL to restream, or --preview"
            )


def build_parser() -> CommandParser:
    parser = CommandParser(
        "live",
        description="Anonymize a live camera or stream as it arrives.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "source",
        metavar="SOURCE",
        help="camera number (0), /dev/video path, stream URL (rtsp, rtmp, http(s), udp, srt) "
        "or file",
    )
    return parser


def main(argv: Sequence[str]) -> int:
    from ..io.live_sinks import LiveSink, PreviewSink, RecordingSink, RestreamSink, is_url

    args = build_parser().parse_args(list(argv))
    command = build(LiveCommand, args, "live")
    options = build(JobOptions, args, "live")
    log = (
        (lambda message: None)
        if args.quiet
        else (lambda message: print(f"veil live: {message}", file=sys.stderr, flush=True))
    )
    stream = open_live(
        args.source,
        options,
        build(LiveOptions, args, "live"),
        command.input_format,
        dict(command.input_options),
        log=log,
    )
    fps = stream.anonymizer.source.fps_hint
    sinks: list[LiveSink] = []
    recordings: list[RecordingSink] = []
    try:
        if command.preview:
            sinks.append(PreviewSink(on_quit=stream.stop))
        for target in command.outputs:
            if is_url(target):
                sinks.append(
                    RestreamSink(target, options.encoder, fps, command.restream_format, log=log)
                )
            else:
                recording = RecordingSink(
                    Path(target), options.encoder, fps, overwrite=options.overwrite
                )
                recordings.append(recording)
                sinks.append(recording)
    except BaseException:
        for sink in sinks:
            sink.close()
        raise

    previous = _stop_on_signals(stream.stop)
    last_report = time.monotonic()
    try:
        for item in stream:
            for sink in sinks:
                sink.write(item.frame)
            if command.stats and time.monotonic() - last_report >= 1.0:
                last_report = time.monotonic()
                log(stream.stats.summary())
    finally:
        _restore_signals(previous)
        for sink in sinks:
            sink.close()
    for recording in recordings:
        if recording.frames_written:
            log(f"recorded {recording.frames_written} frames to {recording.target}")
        else:
            log(f"no frames arrived; {recording.target} was not written")
    log(stream.stats.summary())
    return 0


def _stop_on_signals(stop: Callable[[], None]) -> dict:
    """Ctrl-C and SIGTERM end the loop; the recordings are then finished, not lost."""
    previous = {}
    if threading.current_thread() is not threading.main_thread():
        return previous
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, lambda *_: stop())
    return previous


def _restore_signals(previous: dict) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)
