"""GPU figures in one run: detector-only fps (fp16, batch 8 and 32) and end-to-end 1080p fps.

    python benchmarks/gpu.py [--frames 150]

Prepared to run unattended on a machine with an NVIDIA GPU and onnxruntime-gpu, or PyTorch
built with CUDA (the runtime `--device cuda` picks, in that order):
1. detector only: CenterFace in float16 on that runtime, 1080p frames in batches of 8 and 32
   (network alone, and `detect()` with preprocessing and output decoding);
2. end to end, 1080p: `python -m veil CLIP --device cuda` (software H.264 decoding and x264,
   as a user runs it), and the same frame loop fed by the hardware decoder (h264_cuvid) and
   written by the hardware encoder (hevc_nvenc, else h264_nvenc) when this PyAV build has
   them and the GPU opens them.
On a machine without a usable GPU it prints "no GPU" and runs the CPU's short version of
each step (float32, batch 1, 24 frames, no hardware codecs), so the script itself is
checked end to end anywhere. fps = frames / wall seconds; CPU seconds are printed beside.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(HERE))

from veil.detectors import DetectorOptions  # noqa: E402
from veil.detectors.centerface import INPUT_NAME, OUTPUT_NAMES, CenterFace  # noqa: E402
from veil.detectors.runtime import rgb_planes  # noqa: E402
from veil.frame import Frame  # noqa: E402
from veil.io.video import EncoderOptions, VideoSink, VideoSource  # noqa: E402
from veil.pipeline import JobOptions, Pipeline  # noqa: E402

from clips import build_clips  # noqa: E402

HW_DECODERS = {"h264": "h264_cuvid", "hevc": "hevc_cuvid"}
HW_ENCODERS = ("hevc_nvenc", "h264_nvenc")


def gpu_runtime() -> tuple[str | None, str]:
    """The runtime that runs CenterFace on the GPU, and what it is in words; (None, why not)
    where there is no usable GPU."""
    detector = CenterFace(DetectorOptions(device="cuda"))
    if detector.device != "cuda":
        import onnxruntime as ort

        offered = ", ".join(ort.get_available_providers())
        return None, f"onnxruntime offers {offered} and PyTorch sees no CUDA GPU"
    return detector.backend, detector.provider


def timed(run) -> tuple[float, float]:
    """Wall and CPU seconds of run()."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def decoded_frames(clip: Path, n: int) -> list[np.ndarray]:
    with VideoSource(clip) as src:
        return [f.image for _, f in zip(range(n), src.frames())]


def network(detector: CenterFace, blob: np.ndarray) -> Callable[[], None]:
    """The network alone, on its own input already where it runs (onnxruntime: RGB float
    planes it copies to the GPU itself; PyTorch: the frames' tensor on the GPU)."""
    engine = detector.engine
    if engine.backend == "torch":
        torch, tensor = engine.torch, engine.to_input(blob)

        def run() -> None:
            with torch.inference_mode():
                engine.program(tensor)
            torch.cuda.synchronize()

        return run
    planes = rgb_planes(blob)
    return lambda: engine.session.run(list(OUTPUT_NAMES), {INPUT_NAME: planes})


def detector_rows(frames: list[np.ndarray], gpu: bool) -> None:
    device, precision = ("cuda", "fp16") if gpu else ("cpu", "fp32")
    detector = CenterFace(DetectorOptions(device=device, precision=precision, full_every=1))
    print(f"\n## Detector only ({detector.provider}, {detector.precision}, 1080p)\n")
    print("| batch | network fps | detect() fps | CPU s per frame |\n|---:|---:|---:|---:|")
    for batch in (8, 32) if gpu else (1,):
        groups = [frames[i : i + batch] for i in range(0, len(frames) - batch + 1, batch)]
        if not groups:
            print(f"| {batch} | (needs {batch} frames) | | |")
            continue
        run = network(detector, detector.preprocess(groups[0], None)[0])
        run()  # warm-up: the first run allocates
        count = batch * len(groups)
        net, _ = timed(lambda run=run, groups=groups: [run() for _ in groups])
        wall, cpu = timed(lambda groups=groups: [detector.detect(g) for g in groups])
        print(f"| {batch} | {count / net:.1f} | {count / wall:.1f} | {cpu / count:.3f} |")


def cli_row(clip: Path, frames: int, device: str, out: Path) -> None:
    # This checkout's veil first, and whatever else the environment adds (packages beside it).
    path = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    cmd = [sys.executable, "-m", "veil", str(clip), "-o", str(out), "--overwrite", "-q"]
    start = time.perf_counter()
    proc = subprocess.Popen([*cmd, "--device", device], env=env, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace").strip()
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        print(f"| veil --device {device} (x264) | failed: {err[-120:]} | | |")
        return
    cpu, rss = usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024
    row = f"veil --device {device} (software codecs)"
    print(f"| {row} | {frames / wall:.1f} | {cpu:.1f} | {rss:.0f} |")


def hardware_frames(clip: Path, decoder: str, limit: int):
    """Frames from the hardware decoder, as I420 planes."""
    container = av.open(str(clip))
    stream = container.streams.video[0]
    ctx = av.CodecContext.create(decoder, "r")
    ctx.extradata = stream.codec_context.extradata

    def frames():
        index = 0
        try:
            for packet in container.demux(stream):
                for vf in ctx.decode(packet):
                    if index == limit:
                        return
                    time_ = float(vf.pts * stream.time_base) if vf.pts is not None else index / 25
                    yield Frame(index, time_, yuv=vf.to_ndarray(format="yuv420p"))
                    index += 1
        finally:
            container.close()

    return frames()


def hardware_row(clip: Path, frames: int, out: Path) -> None:
    """The frame loop between the hardware decoder and encoder (what --device cuda could use)."""
    with av.open(str(clip)) as probe:
        stream = probe.streams.video[0]
        codec, fps = stream.codec_context.name, stream.average_rate
    decoder = HW_DECODERS.get(codec)
    encoder = next((c for c in HW_ENCODERS if c in av.codecs_available), None)
    if decoder not in av.codecs_available or encoder is None:
        print(f"| hardware codecs | not in this PyAV build ({decoder}, {HW_ENCODERS}) | | |")
        return
    pipeline = Pipeline(JobOptions(detector=DetectorOptions(device="cuda"), overwrite=True))
    _ = pipeline.detector
    with VideoSource(clip) as src:
        info = src.info
    sink = VideoSink(out, info, EncoderOptions(codec=encoder))

    def run() -> None:
        source = hardware_frames(clip, decoder, frames)
        for frame, _dets in pipeline.iter_anonymized(source, float(fps or Fraction(25))):
            sink.write(frame)
        sink.finish()

    try:
        wall, cpu = timed(run)
    except Exception as exc:  # the GPU may refuse a codec (session limits, old driver)
        sink.abort()
        print(f"| {decoder} + {encoder} | failed: {type(exc).__name__}: {str(exc)[:100]} | | |")
        return
    print(f"| {decoder} + veil + {encoder} | {frames / wall:.1f} | {cpu:.1f} | |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--clips", type=Path, default=HERE / ".clips")
    args = parser.parse_args(argv)
    runtime, words = gpu_runtime()
    gpu = runtime is not None
    print(f"GPU: {runtime}, {words}" if gpu else f"no GPU: {words}; CPU figures, short runs")
    frames = args.frames if gpu else min(args.frames, 24)
    clip = build_clips(args.clips, frames)["1080p"]
    detector_rows(decoded_frames(clip, min(frames, 64)), gpu)
    print("\n## End to end, 1080p\n")
    print("| run | fps | CPU s | peak RSS MiB |\n|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        cli_row(clip, frames, "cuda" if gpu else "cpu", Path(tmp) / "cli.mp4")
        if gpu:
            hardware_row(clip, frames, Path(tmp) / "hw.mp4")
        else:
            print("| hardware codecs (h264_cuvid, hevc_nvenc) | no GPU | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
