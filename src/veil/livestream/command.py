"""`veil live SOURCE`: parse the command line, open the stream, feed the sinks until stopped."""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import OptionError
from .realtime import MISS_POLICIES, LiveOptions, open_live

EXAMPLES = """\
examples:
  veil live 0 --preview                              webcam in a window (q quits)
  veil live rtsp://cam.local/stream -o cam.mp4       record an IP camera, anonymized
  veil live udp://0.0.0.0:5000 -o udp://127.0.0.1:6000 --stats
  veil live /dev/video2 -o rec.mkv -o rtmp://server/live/key --detector blazeface
"""


def build_parser() -> argparse.ArgumentParser:
    from ..cli import (
        add_anonymize_arguments,
        add_detector_arguments,
        add_encoder_arguments,
        add_tracking_arguments,
    )

    parser = argparse.ArgumentParser(
        prog="veil live",
        description="Anonymize a live camera or stream as it arrives.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "source",
        metavar="SOURCE",
        help="camera number (0), /dev/video path, stream URL (rtsp, rtmp, http(s), udp, srt) or file",
    )
    out = parser.add_argument_group("outputs (any combination)")
    out.add_argument(
        "-o",
        "--output",
        action="append",
        default=[],
        metavar="FILE|URL",
        help="record to FILE (written on stop) or restream to URL (udp://, srt://, rtsp://, rtmp://); repeatable",
    )
    out.add_argument("--preview", action="store_true", help="show a window (q quits)")
    out.add_argument(
        "--restream-format",
        metavar="FMT",
        help="FFmpeg muxer for restream URLs (default from the scheme)",
    )
    out.add_argument("--overwrite", action="store_true", help="replace an existing recording")
    rt = parser.add_argument_group("real time")
    rt.add_argument(
        "--max-latency",
        type=float,
        default=LiveOptions.max_latency * 1000,
        metavar="MS",
        help="a frame not detected within this many ms of capture is hidden whole (default %(default)g)",
    )
    rt.add_argument(
        "--on-miss",
        choices=MISS_POLICIES,
        default=LiveOptions.on_miss,
        help="what happens to a late or failed frame: blur it whole or drop it (default %(default)s)",
    )
    rt.add_argument(
        "--detect-every",
        type=int,
        default=1,
        metavar="N",
        help="detect on every Nth frame, reuse boxes between (faster; fast motion may leave the mask)",
    )
    rt.add_argument(
        "--buffer",
        type=int,
        default=LiveOptions.buffer,
        metavar="N",
        help="newest frames kept when behind; older ones are dropped (default %(default)s)",
    )
    rt.add_argument(
        "--no-reconnect",
        action="store_true",
        help="stop when the source ends instead of reconnecting",
    )
    rt.add_argument(
        "--timeout",
        type=float,
        default=LiveOptions.timeout,
        metavar="S",
        help="seconds without data before the source counts as lost and is reopened (default %(default)g)",
    )
    rt.add_argument(
        "--give-up",
        type=float,
        default=None,
        metavar="S",
        help="stop after S seconds without a source (default: keep retrying)",
    )
    rt.add_argument(
        "--duration", type=float, default=None, metavar="S", help="stop after S seconds"
    )
    rt.add_argument(
        "--frames", type=int, default=None, metavar="N", help="stop after N output frames"
    )
    rt.add_argument(
        "--input-format",
        metavar="FMT",
        help="FFmpeg demuxer (v4l2, dshow, avfoundation, mpegts...)",
    )
    rt.add_argument(
        "--input-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="FFmpeg demuxer/protocol option, e.g. video_size=1280x720; repeatable",
    )
    rt.add_argument("--stats", action="store_true", help="print statistics every second")
    rt.add_argument("-q", "--quiet", action="store_true", help="no messages, no summary")
    add_detector_arguments(parser)
    parser.add_argument_group("detection").add_argument(
        "--detector",
        default="centerface",
        metavar="NAME",
        help="face detector: centerface, blazeface (extra mediapipe; with CenterFace for small "
        "faces), blazeface-fast, or onnx:PATH for your own model (default %(default)s)",
    )
    add_anonymize_arguments(parser)
    add_tracking_arguments(parser)
    add_encoder_arguments(parser)
    parser.set_defaults(preset="ultrafast")
    return parser


def _input_options(pairs: Sequence[str]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise OptionError(f"--input-option needs KEY=VALUE, got '{pair}'")
        options[key] = value
    return options


def main(argv: Sequence[str]) -> int:
    from ..cli import job_options_from_args
    from ..io.live_sinks import LiveSink, PreviewSink, RecordingSink, RestreamSink, is_url

    args = build_parser().parse_args(list(argv))
    if not args.output and not args.preview:
        raise OptionError("nothing to do: give -o FILE to record, -o URL to restream, or --preview")
    options = job_options_from_args(args)
    options = dataclasses.replace(
        options, detector=dataclasses.replace(options.detector, name=args.detector)
    )
    live = LiveOptions(
        max_latency=args.max_latency / 1000,
        on_miss=args.on_miss,
        detect_every=args.detect_every,
        buffer=args.buffer,
        reconnect=not args.no_reconnect,
        timeout=args.timeout,
        give_up_after=args.give_up,
        duration=args.duration,
        max_frames=args.frames,
    )
    log = (
        (lambda message: None)
        if args.quiet
        else (lambda message: print(f"veil live: {message}", file=sys.stderr, flush=True))
    )
    stream = open_live(
        args.source, options, live, args.input_format, _input_options(args.input_option), log=log
    )
    fps = stream.anonymizer.source.fps_hint
    sinks: list[LiveSink] = []
    recordings: list[RecordingSink] = []
    try:
        if args.preview:
            sinks.append(PreviewSink(on_quit=stream.stop))
        for target in args.output:
            if is_url(target):
                sinks.append(
                    RestreamSink(target, options.encoder, fps, args.restream_format, log=log)
                )
            else:
                recording = RecordingSink(
                    Path(target), options.encoder, fps, overwrite=args.overwrite
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
            if args.stats and time.monotonic() - last_report >= 1.0:
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
