"""Where the time goes: CPU seconds per frame for each stage of veil's video path.

The frame path is the one `veil` runs on an H.264 file: decoded I420 planes, a BGR copy for
the detector, hiding on the planes (only the regions hidden are converted), the planes
encoded as they are.

Each stage runs alone over the same frames and is charged the process CPU time
it used (all threads, codec and inference pools included). CPU time, unlike
wall time, hardly changes when other programs share the machine, so the shares
are meaningful on a busy computer too.

    python benchmarks/stages.py [--frames 48] [--max-size PX]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import av

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from veil import hide  # noqa: E402
from veil.detectors import DetectorOptions  # noqa: E402
from veil.detectors.centerface import CenterFace, decode  # noqa: E402
from veil.frame import Frame  # noqa: E402
from veil.io.video import EncoderOptions  # noqa: E402

from clips import build_clips  # noqa: E402


class Meter:
    def __init__(self) -> None:
        self.cpu: dict[str, float] = {}

    def add(self, name: str, start: float) -> float:
        now = time.process_time()
        self.cpu[name] = self.cpu.get(name, 0.0) + now - start
        return now


def profile(path: Path, frames: int, max_size: int | None, threads: int) -> dict[str, float]:
    meter = Meter()
    detector = CenterFace(DetectorOptions(max_size=max_size, threads=threads, full_every=8))
    yuv, bgr = [], []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        start = time.process_time()
        for vf in container.decode(stream):
            yuv.append(vf)
            if len(yuv) == frames:
                break
        start = meter.add("decode (H.264)", start)
        # As VideoSource(yuv=True) and Frame give them: the decoded planes, and a BGR copy
        # for the detector.
        planes = [vf.to_ndarray(format="yuv420p") for vf in yuv]
        start = meter.add("decode (H.264)", start)
        bgr = [Frame(i, 0.0, yuv=p).image for i, p in enumerate(planes)]
        meter.add("colour: yuv -> bgr (detector input)", start)
    detector.infer(bgr[:1], max_size, 0.2)  # warm-up: first run allocates
    per_frame_dets = []
    for image in bgr:
        start = time.process_time()
        blob, scale = detector.preprocess([image], max_size)
        start = meter.add("detector preprocess", start)
        heat, scl, off, lms = detector.engine.run(blob)
        start = meter.add("inference", start)
        dets = decode(heat[0], scl[0], off[0], lms[0], 0.2).scaled(1 / scale)
        meter.add("detector decode + NMS", start)
        per_frame_dets.append(dets)
    scanner = detector.stream()
    if scanner is not None and max_size is None:
        start = time.process_time()
        for i in range(0, len(bgr), scanner.batch_size):
            scanner.detect(bgr[i : i + scanner.batch_size])
        scan_cpu = (time.process_time() - start) / len(bgr)
    start = time.process_time()
    for image, dets in zip(planes, per_frame_dets):
        hide.apply_i420(image, dets, hide.AnonymizeOptions())
    start = meter.add("hiding (blur, regions only, on the planes)", start)
    options = EncoderOptions()
    out = av.open("/dev/null", "w", format="mp4")
    enc = out.add_stream(options.codec, rate=30)
    enc.width, enc.height, enc.pix_fmt = bgr[0].shape[1], bgr[0].shape[0], "yuv420p"
    enc.options = {"crf": str(options.crf), "preset": options.preset}
    start = time.process_time()
    for i, image in enumerate(planes):  # the encoder takes the planes as they are
        vf = av.VideoFrame.from_ndarray(image, format="yuv420p")
        vf.pts = i
        enc.encode(vf)
    enc.encode(None)
    meter.add("encode (x264)", start)
    out.close()
    shares = {k: v / len(bgr) for k, v in meter.cpu.items()}
    return shares, (scan_cpu if scanner is not None and max_size is None else None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument(
        "--max-size", type=int, default=None, help="detector input cap (default native)"
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="inference threads (default all cores)"
    )
    parser.add_argument("--clips", type=Path, default=Path(__file__).resolve().parent / ".clips")
    args = parser.parse_args(argv)
    clips = build_clips(args.clips, 150)
    for name, path in clips.items():
        shares, scan = profile(path, args.frames, args.max_size, args.threads)
        total = sum(shares.values())
        size = args.max_size or "native"
        print(f"\n{name} ({path.name}, detector input {size}): {total * 1000:.0f} CPU ms per frame")
        for stage, seconds in sorted(shares.items(), key=lambda kv: -kv[1]):
            print(f"  {stage:24s} {seconds * 1000:7.1f} ms  {100 * seconds / total:5.1f}%")
        if scan is not None:
            detect = sum(v for k, v in shares.items() if k.startswith(("detector", "inference")))
            print(
                "  keyframe scan (--full-every 8) instead of full resolution on every frame: "
                f"detection {scan * 1000:.1f} ms per frame ({detect / scan:.1f}x less), "
                f"whole frame {(total - detect + scan) * 1000:.0f} ms"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
