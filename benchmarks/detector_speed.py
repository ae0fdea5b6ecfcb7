"""Detector-only speed of each runtime and precision, side by side on the same frames.

    python benchmarks/detector_speed.py [--frames 24] [--threads 2] [--fresh-int8] [--torch]

CenterFace at full resolution (one pass per frame: preprocessing, inference,
output decoding) on 720p and 1080p frames with real faces (benchmarks/clips.py),
which the network reads padded to 1280x736 and 1920x1088,
for today's onnxruntime float32 path and OpenVINO at float32, bfloat16 and INT8.
Every frame is run by each variant in turn, so a change in the machine's load
hits all of them alike; wall and CPU milliseconds per frame are printed with
each variant's speed-up over onnxruntime. The first frame of each size is a
warm-up (compilation for that shape) and is timed apart.

--fresh-int8 quantizes into an empty cache folder, to time the one-time INT8
quantization; otherwise the user's cache is used.

--overlap instead compares, for OpenVINO at the precision "auto" picks, one
synchronous request per frame (what veil runs) with two asynchronous requests,
where the next frame's preprocessing overlaps the current frame's inference;
the two alternate three times over the same frames.

--torch adds PyTorch in float32 (the GPU runtime where onnxruntime-gpu is missing, run here
on the CPU; opt-in, because its idle threads spin on the cores the other variants then use).

--layers instead prints where the network's own time goes at the precision "auto" picks:
OpenVINO's per-layer counters summed by layer type and kernel, over the same frames.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

from veil.detectors import DetectorOptions  # noqa: E402
from veil.detectors.centerface import CenterFace, input_geometry  # noqa: E402
from veil.detectors.runtime import (  # noqa: E402
    cpu_flags,
    import_quietly,
    openvino_core,
    openvino_precision,
)
from veil.errors import VeilError  # noqa: E402

from clips import SIZES, source_frames  # noqa: E402

VARIANTS = {
    "onnxruntime fp32 (before)": {"backend": "onnxruntime", "precision": "fp32"},
    "openvino fp32": {"backend": "openvino", "precision": "fp32"},
    "openvino bf16": {"backend": "openvino", "precision": "bf16"},
    "openvino int8": {"backend": "openvino", "precision": "int8"},
}
BASELINE = "onnxruntime fp32 (before)"
# What decides the speed of each precision: AVX-512 and VNNI (INT8 dot products), AVX512_BF16
# and AMX (bfloat16 and INT8 matrix tiles).
SHOWN_FLAGS = (
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)


def machine() -> str:
    import onnxruntime

    openvino = import_quietly("openvino")
    flags = cpu_flags()
    shown = [f for f in SHOWN_FLAGS if flags and f in flags]
    core = openvino_core()
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA")
    held = f"; oneDNN held to {isa} (an older CPU's instructions)" if isa else ""
    return (
        f"{core.get_property('CPU', 'FULL_DEVICE_NAME')} ({platform.machine()}, "
        f"{os.cpu_count()} cores); flags: {' '.join(shown) or 'unknown'}; OpenVINO offers "
        f"{' '.join(core.get_property('CPU', 'OPTIMIZATION_CAPABILITIES'))}; "
        f"openvino {openvino.__version__}, onnxruntime {onnxruntime.__version__}; "
        f"auto picks openvino {openvino_precision('auto', True, 'CenterFace')}{held}"
    )


def load(threads: int, torch: bool) -> tuple[dict[str, CenterFace], dict[str, float]]:
    detectors, seconds = {}, {}
    variants = {**VARIANTS, "torch fp32": {"backend": "torch", "precision": "fp32"}}
    for name, choice in variants.items() if torch else VARIANTS.items():
        start = time.perf_counter()
        detectors[name] = CenterFace(DetectorOptions(threads=threads, **choice))
        seconds[name] = time.perf_counter() - start
    return detectors, seconds


def timed(run) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(detectors: dict[str, CenterFace], frames: list) -> tuple[dict, dict]:
    """Per variant: (wall s, CPU s) summed over frames[1:], and the first frame's wall s."""
    first = {}
    for name, det in list(detectors.items()):
        try:
            first[name] = timed(lambda det=det: det.infer(frames[:1], None, 0.2))[0]
        except VeilError as exc:  # bf16 does not compile where oneDNN is held to AVX2
            print(f"{name}: skipped ({exc})")
            del detectors[name]
    totals = {name: [0.0, 0.0] for name in detectors}
    for frame in frames[1:]:
        for name, det in detectors.items():
            wall, cpu = timed(lambda det=det, frame=frame: det.infer([frame], None, 0.2))
            totals[name][0] += wall
            totals[name][1] += cpu
    return totals, first


def overlap(frames: list, threads: int) -> None:
    """Wall and CPU ms per frame: one synchronous request, then two asynchronous ones."""
    from veil.detectors.centerface import decode

    ov = import_quietly("openvino")
    det = CenterFace(DetectorOptions(backend="openvino", threads=threads))
    engine = det.engine
    compiled, (request,) = engine._compile(tuple(det.preprocess(frames[:1], None)[0].shape))
    queue = ov.AsyncInferQueue(compiled, 2)
    results: dict[int, list] = {}
    queue.set_callback(
        lambda req, i: results.__setitem__(
            i, [req.get_tensor(n).data.copy() for n in engine.outputs]
        )
    )

    def synchronous() -> None:
        for frame in frames:
            request.infer({0: det.preprocess([frame], None)[0]}, share_inputs=True)
            outputs = [request.get_tensor(n).data.copy() for n in engine.outputs]
            decode(*[o[0] for o in outputs], 0.2)

    def asynchronous() -> None:
        results.clear()
        for i, frame in enumerate(frames):
            queue.start_async({0: det.preprocess([frame], None)[0]}, userdata=i)
        queue.wait_all()
        for i in range(len(frames)):
            decode(*[o[0] for o in results[i]], 0.2)

    totals = {"1 synchronous request": [0.0, 0.0], "2 asynchronous requests": [0.0, 0.0]}
    runs = dict(zip(totals, (synchronous, asynchronous)))
    for _ in range(3):
        for name, run in runs.items():
            wall, cpu = timed(run)
            totals[name][0] += wall
            totals[name][1] += cpu
    row(f"openvino {det.precision}", "wall ms/frame", "CPU ms/frame")
    print("|---|---:|---:|")
    for name, (wall, cpu) in totals.items():
        row(name, ms(wall, 3 * len(frames)), ms(cpu, 3 * len(frames)))


def layers(frames: list, threads: int) -> None:
    """Milliseconds per frame by layer type and kernel, from OpenVINO's performance counters."""
    det = CenterFace(DetectorOptions(backend="openvino", threads=threads))
    engine = det.engine
    engine.config["PERF_COUNT"] = True  # this engine compiles for the counters only
    blob = det.preprocess(frames[:1], None)[0]
    _, (request,) = engine._compile(tuple(blob.shape))
    request.infer({0: blob})  # warm-up
    spent: dict[tuple[str, str], float] = {}
    wall = 0.0
    for frame in frames:
        blob = det.preprocess([frame], None)[0]
        wall += timed(lambda blob=blob: request.infer({0: blob}, share_inputs=True))[0]
        for layer in request.profiling_info:
            key = (layer.node_type, layer.exec_type)
            spent[key] = spent.get(key, 0.0) + layer.real_time.total_seconds()
    total = sum(spent.values())
    print(f"openvino {det.precision}: {ms(wall, len(frames))} ms a frame (wall, with counters on)")
    row("layer type", "kernel", "ms/frame", "share")
    print("|---|---|---:|---:|")
    for (kind, kernel), seconds in sorted(spent.items(), key=lambda item: -item[1]):
        if seconds / total >= 0.002:
            row(kind, kernel, ms(seconds, len(frames)), f"{100 * seconds / total:.0f}%")


def row(*cells: str) -> None:
    print("| " + " | ".join(cells) + " |")


def ms(seconds: float, frames: int) -> str:
    return f"{seconds / frames * 1000:.1f}"


def ratio(before: float, after: float) -> str:
    return f"{before / after:.2f}x"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=24, help="timed frames per size")
    parser.add_argument("--threads", type=int, default=2, help="inference threads (0 = all)")
    parser.add_argument("--fresh-int8", action="store_true", help="time the INT8 quantization")
    parser.add_argument("--overlap", action="store_true", help="sync vs 2 async requests")
    parser.add_argument("--layers", action="store_true", help="network time by layer type")
    parser.add_argument("--torch", action="store_true", help="add PyTorch fp32 on the CPU")
    args = parser.parse_args()
    if args.fresh_int8:
        os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="veil-bench-cache-")
    source, _, origin = source_frames(args.frames + 1)
    print(machine())
    print(
        f"threads {args.threads or os.cpu_count()}; frames from {origin}; "
        f"load average {os.getloadavg()[0]:.1f} at the start"
    )
    if args.overlap or args.layers:
        for size, (w, h) in SIZES.items():
            print(f"\n{size} ({w}x{h}), {len(source)} frames")
            frames = [cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in source]
            (layers if args.layers else overlap)(frames, args.threads)
        return 0
    detectors, load_seconds = load(args.threads, args.torch)
    print(
        "load (s, INT8 includes quantization when not cached): "
        + ", ".join(f"{k} {v:.1f}" for k, v in load_seconds.items())
    )
    for size, (w, h) in SIZES.items():
        frames = [cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in source]
        totals, first = measure(detectors, frames)
        n = len(frames) - 1
        base_wall, base_cpu = totals[BASELINE]
        _, _, _, ph, pw = input_geometry(h, w, None)
        print(f"\n{size} ({w}x{h}, network input {pw}x{ph}), {n} frames, one per call")
        row("variant", "wall ms/frame", "CPU ms/frame", "speed-up wall", "speed-up CPU", "first s")
        print("|---|---:|---:|---:|---:|---:|")
        for name, (wall, cpu) in totals.items():
            row(
                name,
                ms(wall, n),
                ms(cpu, n),
                ratio(base_wall, wall),
                ratio(base_cpu, cpu),
                f"{first[name]:.2f}",
            )
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
