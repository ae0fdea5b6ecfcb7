"""Inference runtimes behind one engine: OpenVINO on CPUs, onnxruntime (or PyTorch) on GPUs, and
onnxruntime as the fallback.

A detector hands its ONNX model to `load_engine` and gets an engine that runs input
blobs; which runtime and which arithmetic run it is decided here, once, so every
ONNX detector gets the same choice:

- backend "auto": OpenVINO on x86-64 CPUs where it runs reduced precision, there
  CenterFace takes 1.9x (bfloat16) to 2.4x (INT8) less CPU time than onnxruntime
  (720p, 2 threads, AMX CPU; benchmarks/detector_speed.py); onnxruntime for float32
  (OpenVINO was no faster there), for models without calibration photos, for GPUs
  (TensorRT, CUDA, CoreML providers) and for other CPUs; PyTorch (torch_graph.py) for an
  NVIDIA GPU where onnxruntime has no provider for it. When OpenVINO or PyTorch cannot be
  imported or cannot run the model, one log line says so and onnxruntime runs it: the
  same faces, slower.
- precision "auto": on OpenVINO, bfloat16 where the CPU computes it in hardware (AMX
  or AVX512_BF16), else INT8 from NNCF post-training quantization (cached), else
  float32; reduced precision only for models that bring calibration photos, because
  only their recall has been measured at it (docs/speed.md). On onnxruntime, float16
  on a GPU and float32 on a CPU. "fp32" keeps full float32 anywhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.metadata
import importlib.util
import io
import itertools
import logging
import math
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from ..errors import DetectorError, OptionError, VeilError
from .compiled import CompiledCache, model_key

log = logging.getLogger("veil")

BACKENDS = ("auto", "openvino", "onnxruntime", "torch")
PRECISIONS = ("auto", "fp32", "fp16", "bf16", "int8")
OPENVINO_ONLY = ("bf16", "int8")
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CoreMLExecutionProvider")
# INT8's hint is the arithmetic of the layers it keeps unquantized: see _hint.
OPENVINO_HINTS = {"fp32": "f32", "fp16": "f16", "bf16": "bf16", "int8": "f32"}
# CPU flags of hardware bfloat16 arithmetic; without them OpenVINO emulates it, slower than float32.
BF16_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})
X86_64 = ("x86_64", "amd64")
# Input pixels of the static-shape compiled models an engine keeps, per stream: each holds its own
# activations, about 120 MiB per megapixel (CenterFace, bf16: 245 MiB at 1920x1088), so 5 MP
# bound them near 600 MiB. A count of four was too few for a crowd at 1080p, whose keyframes
# read the frame and three or four tile shapes and whose other frames a coarse pass and a crop:
# the least recently used model was always one about to be needed, and a 96-frame crowd pan
# compiled 32 times (the 640x384 pass six times).
STATIC_PIXELS = 5_000_000
# Share of its time a shape loses on the shape-agnostic model: 6-18% on CenterFace in bf16 at
# 256x256 to 1216x704 (one compiled model of each against the agnostic one, six runs apiece).
DYNAMIC_OVERHEAD = 0.12
# What compiling a shape costs until one has been timed here (the others came from the cache):
# CenterFace took 0.25-0.35 s, single-threaded, from 384x640 to 1088x1920 (bf16, AMX CPU).
COMPILE_SECONDS = 0.3
# Bumped when the quantization recipe changes, so cached INT8 models are rebuilt.
INT8_RECIPE = "minmax-ends-float-1"


@dataclass(frozen=True)
class Calibration:
    """Representative network inputs for INT8 quantization.

    key: names what the blobs are made from and how (photos, scales, preprocessing), so a
    quantized model already cached is found without making them: making and hashing them,
    with NNCF's import, took 0.8 s of every INT8 run's start. Called only for INT8.
    blobs: makes them, only when a model is quantized.
    """

    key: Callable[[], str]
    blobs: Callable[[], Sequence[np.ndarray]]


def check_runtime(backend: str, precision: str) -> None:
    """One-line user error for a backend and precision that cannot combine (each value on
    its own is checked against BACKENDS and PRECISIONS by the option schema)."""
    if backend in ("onnxruntime", "torch") and precision in OPENVINO_ONLY:
        raise OptionError(f"precision {precision} runs on the openvino backend, not {backend}")


class Engine(Protocol):
    """An ONNX model ready to run: one input blob in, the outputs asked for out, in order.

    backend, precision: what actually runs it (precision resolved from "auto").
    provider: where, in words; device: the same in --device's words ("cpu", "cuda").
    on_cpu: whether that is the CPU (the keyframe scan and one-frame batches pay off
    there). input_shape: the dims of the blobs it is handed (the model's input, or the
    frames' for a bgr_input model), None where any size is accepted.
    """

    backend: str
    precision: str
    provider: str
    device: str
    on_cpu: bool
    input_shape: list[int | None]

    def run(self, blob: np.ndarray) -> list[np.ndarray]: ...

    def run_many(
        self, blobs: Iterable[np.ndarray], *, recurring: bool = False
    ) -> list[list[np.ndarray]]:
        """`run` for each blob (all of one shape), in order; recurring: the caller runs this
        shape again and again (the keyframe scan's coarse pass), worth a model of its own."""
        ...

    def prepare(self, shape: Sequence[int], *, recurring: bool = False) -> None:
        """Get ready for blobs of this shape (run, or run_many recurring) in the background."""
        ...


def load_engine(
    model: bytes | str | os.PathLike,
    options,
    *,
    name: str,
    outputs: Sequence[str] | None = None,
    calibration: Calibration | None = None,
    bgr_input: bool = False,
) -> Engine:
    """The engine for `options` (a DetectorOptions: backend, precision, device, threads).

    model: ONNX file or its bytes. name: how messages call it. outputs: output names
    to return, in this order (default: all, in the model's order). calibration:
    representative input blobs, for INT8 quantization; a model that brings them has
    been measured at reduced precision, so "auto" precision may choose fp16 (GPU),
    bf16 or int8 for it; any other model runs float32 unless a precision is asked for.
    bgr_input: the model reads RGB planes (NCHW float32, 0..255) and the engine is handed
    frames as they are instead (NHWC uint8 BGR, see rgb_planes); calibration blobs stay
    the model's own input.
    """
    measured = calibration is not None
    backend = options.backend
    if backend == "auto":
        backend = _auto_backend(options, measured)
    if backend == "torch":
        engine = _torch_engine(
            model, options, name=name, outputs=outputs, measured=measured, bgr_input=bgr_input
        )
        if engine is not None:
            return engine
    elif backend == "openvino":
        try:
            engine = OpenVinoEngine(
                model,
                options,
                name=name,
                outputs=outputs,
                calibration=calibration,
                bgr_input=bgr_input,
            )
        except VeilError:
            raise
        except Exception as exc:  # ImportError, or OpenVINO's own errors for a model it cannot read
            reason = " ".join(str(exc).split())[:200] or type(exc).__name__
            if options.backend == "openvino" or options.precision in OPENVINO_ONLY:
                raise DetectorError(
                    f"OpenVINO cannot run {name} ({reason}); pip install 'veil[openvino]'"
                ) from exc
            engine = OnnxRuntimeEngine(
                model, options, name=name, outputs=outputs, measured=measured, bgr_input=bgr_input
            )
            log.warning(
                "veil: warning: OpenVINO cannot run %s (%s); running it on onnxruntime",
                name,
                reason,
            )
            return engine
        if (
            options.backend == "openvino"
            or options.precision != "auto"
            or engine.precision != "fp32"
        ):
            return engine
        # "auto" came to float32 on this CPU (no hardware bfloat16, no NNCF): see _auto_backend.
    return OnnxRuntimeEngine(
        model, options, name=name, outputs=outputs, measured=measured, bgr_input=bgr_input
    )


def _torch_engine(model, options, *, name: str, **kwargs) -> Engine | None:
    """PyTorch's engine (torch_graph.py); None, after one log line, where "auto" chose it for a
    GPU and it cannot run the model (an operation it lacks): onnxruntime runs that one."""
    from .torch_graph import TorchEngine

    asked = options.backend == "torch"
    try:
        return TorchEngine(model, options, name=name, **kwargs)
    except VeilError as exc:
        if asked:
            raise
        message = str(exc)
    except Exception as exc:  # PyTorch's own errors (CUDA out of memory, a driver fault)
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        message = f"PyTorch cannot run {name} ({reason})"
        if asked:
            raise DetectorError(message) from exc
    log.warning("veil: warning: %s; running it on onnxruntime", message)
    return None


def rgb_planes(frames: np.ndarray) -> np.ndarray:
    """Frames as decoded (NHWC uint8 BGR) as a network reading RGB planes takes them (NCHW
    float32, 0..255): what onnxruntime is handed for a bgr_input model, and its INT8
    calibration blobs. Plane by plane through cv2.split, which took a third of the time of
    a transposed numpy copy."""
    planes = np.empty((frames.shape[0], 3, *frames.shape[1:3]), np.float32)
    for i, frame in enumerate(frames):
        for channel, plane in zip((2, 1, 0), cv2.split(frame)):
            planes[i, channel] = plane
    return planes


def _auto_backend(options, measured: bool) -> str:
    """OpenVINO where it is faster: for reduced precision on x86-64 CPUs. In float32 it ran
    CenterFace no faster than onnxruntime (0.97x the CPU time at 720p, 2 threads, AMX CPU;
    benchmarks/detector_speed.py), so float32 and models without measured reduced
    precision stay on onnxruntime. A GPU (--device cuda, or auto where there is one) goes to
    onnxruntime where it has the GPU's provider, else to PyTorch where that has CUDA."""
    if options.precision in OPENVINO_ONLY:
        return "openvino"
    if options.device != "cpu":
        gpu = _gpu_backend(options.device)
        if gpu is not None:
            return gpu
    if options.precision != "auto" or not measured:
        return "onnxruntime"
    return "openvino" if platform.machine().lower() in X86_64 else "onnxruntime"


def _gpu_backend(device: str) -> str | None:
    """The runtime for --device cuda or auto: onnxruntime with a GPU provider (CUDA for
    cuda), else PyTorch with CUDA; for cuda with neither, onnxruntime, which says so and runs
    on the CPU; for auto, None (the CPU's choice)."""
    if gpu_providers(device):
        return "onnxruntime"
    from .torch_graph import torch_cuda

    if torch_cuda():
        return "torch"
    return "onnxruntime" if device == "cuda" else None


# --- onnxruntime ---------------------------------------------------------------------


def gpu_providers(device: str) -> list[str]:
    """onnxruntime's GPU execution providers that --device may use and this onnxruntime
    offers, best first: CUDA alone for cuda, any of GPU_PROVIDERS for auto."""
    import onnxruntime as ort

    wanted = ["CUDAExecutionProvider"] if device == "cuda" else GPU_PROVIDERS
    available = ort.get_available_providers()
    return [p for p in wanted if p in available]


def providers_for(device: str) -> list[str]:
    """onnxruntime execution providers for a device name, CPU always last.

    Asking for CUDA where it is missing is not fatal: the job runs on the CPU,
    slower but identical, and one line says so.
    """
    import onnxruntime as ort

    if device == "cpu":
        return ["CPUExecutionProvider"]
    chosen = gpu_providers(device)
    if device == "cuda" and not chosen:
        log.warning(
            "veil: warning: --device cuda needs an NVIDIA GPU and onnxruntime-gpu or PyTorch "
            "with CUDA (this onnxruntime offers %s); running on the CPU",
            ", ".join(ort.get_available_providers()),
        )
    return chosen + ["CPUExecutionProvider"]


def session_options(threads: int = 0):
    """CPU inference settings for a machine that also decodes and encodes video.

    Spinning worker threads would take cores the codecs need while the detector
    waits for frames, so they sleep instead; graph optimization fuses each
    batch norm into its convolution. The memory pattern (one block planned and kept per input
    shape) is off: the keyframe scan feeds many shapes, and at 1080p the planned blocks held
    about 290 MiB more than the arena reusing freed buffers, for no saving in CPU time
    (benchmarks/memory.py).
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads or (os.cpu_count() or 1)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.enable_mem_pattern = False
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return opts


def half_precision(model) -> None:
    """Weights and arithmetic in float16, the graph's inputs and outputs still float32.

    A GPU runs float16 convolutions on its tensor cores at about twice the speed
    and half the memory traffic; the casts at the edges keep the caller's
    arrays and the output decoding unchanged. CenterFace is plain convolutions,
    batch norms, ReLUs and one sigmoid, all of which have float16 kernels.
    """
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    for init in graph.initializer:
        if init.data_type == TensorProto.FLOAT:
            init.CopyFrom(
                numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name)
            )
    inputs = {v.name for v in graph.input if v.type.tensor_type.elem_type == TensorProto.FLOAT}
    outputs = {v.name for v in graph.output if v.type.tensor_type.elem_type == TensorProto.FLOAT}
    for node in graph.node:
        node.input[:] = [f"{name}_fp16" if name in inputs else name for name in node.input]
        node.output[:] = [f"{name}_fp16" if name in outputs else name for name in node.output]
    for name in sorted(inputs):
        graph.node.insert(
            0, helper.make_node("Cast", [name], [f"{name}_fp16"], to=TensorProto.FLOAT16)
        )
    for name in sorted(outputs):
        graph.node.append(helper.make_node("Cast", [f"{name}_fp16"], [name], to=TensorProto.FLOAT))


def make_session(
    model: bytes | str | os.PathLike,
    device: str = "cpu",
    threads: int = 0,
    fp16: bool = False,
    providers: Sequence[str] | None = None,
    name: str | None = None,
):
    """An onnxruntime session (fp16: see half_precision); one-line error for a bad model."""
    import onnxruntime as ort

    try:
        if fp16:
            import onnx

            proto = onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(model)
            half_precision(proto)
            model = proto.SerializeToString()
        return ort.InferenceSession(
            model if isinstance(model, bytes) else str(model),
            session_options(threads),
            providers=list(providers or providers_for(device)),
        )
    except DetectorError:
        raise
    except Exception as exc:  # onnxruntime raises its own types for corrupt files
        reason = " ".join(str(exc).split())[:200]
        raise DetectorError(f"cannot load {name or f'model {model}'}: {reason}") from exc


def plain_precision(requested: str, *, on_gpu: bool, measured: bool) -> str:
    """onnxruntime's and PyTorch's precision: "auto" is float16 on a GPU for a model whose
    recall was measured in it, float32 otherwise; bf16 and int8 are OpenVINO's."""
    if requested in OPENVINO_ONLY:
        raise OptionError(f"precision {requested} runs on the openvino backend")
    if requested == "auto":
        return "fp16" if on_gpu and measured else "fp32"
    return requested


def handed_shape(dims: list[int | None], bgr_input: bool) -> list[int | None]:
    """The dims of the blobs an engine is handed for a model input of these (NCHW) dims:
    NHWC for a bgr_input model, which takes frames as decoded."""
    return [dims[0], *dims[2:], dims[1]] if bgr_input and len(dims) == 4 else dims


def device_of(provider: str) -> str:
    """The device an onnxruntime execution provider runs on, in --device's words
    ("CUDAExecutionProvider" -> "cuda")."""
    return provider.removesuffix("ExecutionProvider").lower()


class OneAtATime:
    """run_many and prepare for an engine that runs one request at a time on all its threads
    and plans each shape as it runs (onnxruntime's session, PyTorch); the engine has `run`."""

    def run_many(
        self, blobs: Iterable[np.ndarray], *, recurring: bool = False
    ) -> list[list[np.ndarray]]:
        return [self.run(blob) for blob in blobs]  # type: ignore[attr-defined]

    def prepare(self, shape: Sequence[int], *, recurring: bool = False) -> None:
        """Nothing to do ahead."""


class OnnxRuntimeEngine(OneAtATime):
    """onnxruntime: GPUs through their providers, and the CPU where OpenVINO is not used.

    measured: the model's recall was measured in float16, so "auto" takes it on a GPU
    (about twice as fast there, the same faces); other models keep float32 unless asked,
    because user graphs may hold weights that must stay float32. On a CPU "auto" is
    float32: onnxruntime has few float16 CPU kernels and casts back and forth.
    """

    backend = "onnxruntime"

    def __init__(
        self,
        model: bytes | str | os.PathLike,
        options,
        *,
        name: str,
        outputs: Sequence[str] | None = None,
        measured: bool = False,
        bgr_input: bool = False,
    ) -> None:
        providers = providers_for(options.device)
        on_gpu = providers[0] != "CPUExecutionProvider"
        self.precision = plain_precision(options.precision, on_gpu=on_gpu, measured=measured)
        self.session = make_session(
            model, options.device, options.threads, self.precision == "fp16", providers, name
        )
        self.provider = self.session.get_providers()[0]
        self.device = device_of(self.provider)
        self.on_cpu = self.provider == "CPUExecutionProvider"
        first = self.session.get_inputs()[0]
        self._input = first.name
        dims = [d if isinstance(d, int) else None for d in first.shape]
        self.input_shape = handed_shape(dims, bgr_input)
        self._outputs = list(outputs) if outputs else None
        self._bgr_input = bgr_input

    def run(self, blob: np.ndarray) -> list[np.ndarray]:
        if self._bgr_input:
            blob = rgb_planes(blob)
        return self.session.run(self._outputs, {self._input: blob})


# --- OpenVINO ------------------------------------------------------------------------


def import_quietly(module: str):
    """`import module` (openvino, nncf) with openvino_telemetry hidden while it loads.

    veil sends nothing anywhere, but `import openvino` reports the import to Google
    Analytics, and NNCF each quantization, through openvino_telemetry; where that
    module cannot be imported, both use their own stubs and send nothing. (A process
    that imported them before veil keeps whatever they set up.)
    """
    if module in sys.modules:
        return sys.modules[module]
    saved = sys.modules.get("openvino_telemetry")
    sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]
    try:
        return importlib.import_module(module)
    finally:
        if saved is None:
            del sys.modules["openvino_telemetry"]
        else:
            sys.modules["openvino_telemetry"] = saved


@lru_cache(maxsize=1)
def openvino_core():
    return import_quietly("openvino").Core()


def cpu_flags() -> frozenset[str] | None:
    """The CPU's feature flags as Linux lists them, or None where it does not."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return None


def native_bf16(
    capabilities: Sequence[str], flags: frozenset[str] | None, machine: str | None = None
) -> bool:
    """Whether bfloat16 runs in hardware: OpenVINO offers it, on x86-64, and where the
    operating system lists the CPU's flags, AMX or AVX512_BF16 is among them (emulated
    bfloat16 ran CenterFace 2.6x slower than float32 when oneDNN was held to AVX512-VNNI)."""
    machine = (machine or platform.machine()).lower()
    if "BF16" not in capabilities or machine not in X86_64:
        return False
    return flags is None or bool(BF16_FLAGS & flags)


def hardware_bf16() -> bool:
    """Whether this machine's CPU computes bfloat16 in hardware (native_bf16, from what
    OpenVINO offers and the flags Linux lists)."""
    return native_bf16(
        openvino_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"), cpu_flags()
    )


def _hint(precision: str) -> str:
    """OpenVINO's INFERENCE_PRECISION_HINT for a precision. INT8 leaves the layers that
    quantize worst (full_precision_layers) and the operations between convolutions
    unquantized; where the CPU computes bfloat16 in hardware they run in it, as they do in
    the bf16 precision. In float32 they made INT8 slower than bf16 on a CPU with
    AVX512_BF16 and no AMX: CenterFace at 1280x736, 2 threads, took 97 CPU ms a frame in
    INT8 with float32 between, 63 with bfloat16 between and 65-78 in bf16
    (benchmarks/detector_speed.py, docs/speed.md)."""
    if precision == "int8" and hardware_bf16():
        return "bf16"
    return OPENVINO_HINTS[precision]


def _can_quantize() -> bool:
    return importlib.util.find_spec("nncf") is not None


def openvino_precision(requested: str, calibrated: bool, name: str) -> str:
    """What "auto" means on this CPU; explicit precisions are kept, except INT8 for a model
    without calibration photos (only veil's face detector brings them), which runs float32
    with one log line, so `--precision int8 --targets face,text` still runs."""
    if requested == "int8" and not calibrated:
        log.warning(
            "veil: warning: INT8 needs calibration photos, which %s lacks; running it in float32",
            name,
        )
        return "fp32"
    if requested != "auto":
        return requested
    if not calibrated:
        return "fp32"
    if hardware_bf16():
        return "bf16"
    if _can_quantize():
        return "int8"
    log.info("veil: INT8 inference needs NNCF (pip install 'veil[openvino]'); running float32")
    return "fp32"


def _pixels(compiled: Iterable[tuple[tuple[int, ...], int]], channels_last: bool) -> int:
    """Input pixels that compiled models hold activations for: (shape, streams) pairs, each
    stream with its own, batch included, the shape's last two axes being height and width
    (channels_last: the two before the last)."""
    return sum(
        streams * math.prod(shape[:-1] if channels_last else shape[:-3] + shape[-2:])
        for shape, streams in compiled
    )


class OpenVinoEngine:
    """OpenVINO on the CPU, with one compiled model per input shape.

    A model compiled for one shape runs faster than the shape-agnostic one, by
    DYNAMIC_OVERHEAD of its time, and compiling costs about as much as a few
    full-resolution passes. So the first shape (the frames of a video, a single image)
    is compiled for at once; any other shape (the keyframe scan's coarse pass and
    crops) runs on the shape-agnostic model until what that has cost over a compiled
    model (DYNAMIC_OVERHEAD of its time there) reaches what a compilation costs, which
    bounds the loss either way to about one compilation per shape (the ski-rental
    rule). Counting the whole time there instead compiled a crowd's one-off crop and
    tile shapes, a third of a second each, to save a few hundredths.
    """

    backend = "openvino"
    provider = "OpenVINO CPU"
    device = "cpu"
    on_cpu = True

    def __init__(
        self,
        model: bytes | str | os.PathLike,
        options,
        *,
        name: str,
        outputs: Sequence[str] | None = None,
        calibration: Calibration | None = None,
        bgr_input: bool = False,
    ) -> None:
        self.name = name
        # read_model, not convert_model, which reports its use over the network.
        self.model = openvino_core().read_model(model if isinstance(model, bytes) else str(model))
        if len(self.model.inputs) != 1:
            raise DetectorError(
                f"{name}: one input expected, the model has {len(self.model.inputs)}"
            )
        data = model if isinstance(model, bytes) else Path(model).read_bytes()
        # The model's digest, once (6.5 ms for CenterFace), names both cache folders below.
        source = hashlib.sha256(data).hexdigest()
        version = import_quietly("openvino").__version__
        root = cache_dir() / "openvino"
        checked = CompiledCache(root, model_key([source, version]))
        if not checked.knows_supported():
            self._check_supported()
            checked.mark_supported()
        self.precision = openvino_precision(options.precision, calibration is not None, name)
        if self.precision == "int8":
            self.model = quantized(self.model, data, calibration, name)  # type: ignore[arg-type]
        self._bgr_input = bgr_input
        hint = _hint(self.precision)
        if bgr_input:
            self.model = _reading_bgr(self.model, bfloat16=hint == "bf16")
        self.input_shape = [
            d.get_length() if d.is_static else None
            for d in self.model.inputs[0].get_partial_shape()
        ]
        self.outputs = list(outputs) if outputs else [o.get_any_name() for o in self.model.outputs]
        self.config = {
            "INFERENCE_PRECISION_HINT": hint,
            "INFERENCE_NUM_THREADS": options.threads or (os.cpu_count() or 1),
            "PERFORMANCE_HINT": "LATENCY",
            # Pinned threads would all land on the same cores in every batch worker process.
            "ENABLE_CPU_PINNING": False,
        }
        # run_many's recurring shapes: one stream (and request) per inference thread.
        self.streams = self.config["INFERENCE_NUM_THREADS"]
        self._cache = CompiledCache(
            root,
            model_key(
                [source, version, self.precision, INT8_RECIPE, " ".join(sorted(cpu_flags() or ()))]
                + [f"{k}={v}" for k, v in sorted(self.config.items())]
                + [f"input={BGR_INPUT_STEPS if bgr_input else 'as the model reads it'}"]
            ),
        )
        # (shape, streams) -> (compiled model, its infer requests); the shape-agnostic one apart.
        self._static: OrderedDict[tuple[tuple[int, ...], int], tuple[Any, list[Any]]] = (
            OrderedDict()
        )
        self._dynamic: tuple[Any, list[Any]] | None = None
        # Compilations started ahead of use (prepare; the shape-agnostic model), by key (None:
        # that model), on at most two threads.
        self._compiling: dict[tuple[tuple[int, ...], int] | None, Future] = {}
        self._compiler: ThreadPoolExecutor | None = None
        self._spent: dict[tuple[int, ...], float] = {}
        self._compile_seconds: list[float] = []
        self._lock = threading.Lock()

    def _check_supported(self) -> None:
        """Compilation happens per input shape, at the first frame; an operation the CPU
        plugin lacks would only fail there, after load_engine could still fall back. The
        check took 0.21 s a run, so its success is remembered per model and version."""
        supported = openvino_core().query_model(self.model, "CPU")
        missing = [
            op.get_type_name()
            for op in self.model.get_ordered_ops()
            if op.get_friendly_name() not in supported
        ]
        if missing:
            raise RuntimeError(f"its CPU plugin lacks {', '.join(sorted(set(missing)))}")

    @property
    def compiled_shapes(self) -> list[tuple[int, ...]]:
        """Input shapes with a compiled model of their own for `run`, least recently used first."""
        return [shape for shape, streams in self._static if streams == 1]

    @property
    def parallel_shapes(self) -> list[tuple[int, ...]]:
        """Input shapes compiled for run_many's recurring blobs, least recently used first."""
        return [shape for shape, streams in self._static if streams > 1]

    def run(self, blob: np.ndarray) -> list[np.ndarray]:
        """Outputs for one blob, from one synchronous request on all the threads.

        Inference releases the GIL, so the pipeline's decode and encode threads run
        meanwhile. Overlapping the next frame's preparation as well (two asynchronous
        requests) cost more CPU than it saved on 2 cores: bf16, 2 threads, 136 vs 142
        CPU ms per 720p frame and 331 vs 333 at 1080p, sync vs async, wall time moving
        either way by up to 10% on a shared machine (benchmarks/detector_speed.py
        --overlap; docs/speed.md)."""
        shape = tuple(blob.shape)
        with self._lock:
            entry = self._compiled_for(shape)
            request = entry[1][0]
            started = time.perf_counter()
            self._call(request.infer, {0: blob}, share_inputs=True)
            if entry is self._dynamic:
                self._spent[shape] = self._spent.get(shape, 0.0) + time.perf_counter() - started
            return self._outputs_of(request)

    def run_many(
        self, blobs: Iterable[np.ndarray], *, recurring: bool = False
    ) -> list[list[np.ndarray]]:
        """`run` for each blob (all of one shape), in order.

        recurring: the caller runs this shape again and again (the keyframe scan's coarse
        pass, on every frame between keyframes), so it gets a model compiled for it at once,
        with one stream of one thread per inference thread, and the blobs run that many at a
        time. One thread per request spends less time waiting for the others than all threads
        on one request: the 640x384 pass took 17 ms and 33 CPU ms a frame on two threads,
        20-28 ms and as many CPU ms on one (bf16, AMX CPU, the model alone), and the 720p
        command ran 7% faster on 8% less CPU time with two such requests at once than with
        one request at a time (three interleaved runs each; docs/speed.md). The outputs are
        the same. Blobs are read from the iterable while earlier ones run, so a generator
        prepares the next frame meanwhile.
        """
        blobs = iter(blobs)
        streams = self._streams(recurring)
        if streams == 1:
            return [self.run(blob) for blob in blobs]
        first = next(blobs, None)
        if first is None:
            return []
        shape = tuple(first.shape)
        with self._lock:
            free = list(self._compiled_for(shape, streams)[1])
            results: list[list[np.ndarray]] = []
            # Requests running, oldest first, with their blobs: shared inputs must outlive them.
            running: deque[tuple[Any, np.ndarray]] = deque()
            try:
                for blob in itertools.chain([first], blobs):
                    if tuple(blob.shape) != shape:
                        raise ValueError(f"run_many: blobs of one shape, not {blob.shape}")
                    if not free:
                        results.append(self._finish(running[0][0]))
                        free.append(running.popleft()[0])
                    request = free.pop()
                    self._call(request.start_async, {0: blob}, share_inputs=True)
                    running.append((request, blob))
                while running:
                    results.append(self._finish(running[0][0]))
                    running.popleft()
            finally:
                for request, _ in running:  # after a failure: nothing may still read a blob
                    with contextlib.suppress(Exception):
                        request.wait()
            return results

    def _call(self, method, *args, **kwargs) -> None:
        try:
            method(*args, **kwargs)
        except Exception as exc:
            raise DetectorError(f"{self.name}: inference failed ({exc})") from exc

    def _finish(self, request) -> list[np.ndarray]:
        self._call(request.wait)
        return self._outputs_of(request)

    def prepare(self, shape: Sequence[int], *, recurring: bool = False) -> None:
        """Start compiling, on another thread, the model that `run` (or run_many, recurring)
        will want for blobs of this shape, so the compilation overlaps other work: the
        keyframe scan asks for its coarse pass while its first keyframe is compiled and run.
        Compiling is single-threaded: the first frame's three compilations (frame, coarse
        pass, shape-agnostic) took 0.95 s one after the other and 0.47 s at once on 2 cores."""
        with self._lock:
            self._start((tuple(shape), self._streams(recurring)))

    def _streams(self, recurring: bool) -> int:
        return self.streams if recurring and self.streams > 1 else 1

    def _start(self, key: tuple[tuple[int, ...], int] | None) -> None:
        if key in self._static or key in self._compiling or (key is None and self._dynamic):
            return
        if self._compiler is None:
            self._compiler = ThreadPoolExecutor(max_workers=2, thread_name_prefix="veil-compile")
        shape, streams = key if key is not None else (None, 1)
        self._compiling[key] = self._compiler.submit(self._compile, shape, streams, keep=True)

    def _take(
        self, key: tuple[tuple[int, ...], int] | None, *, keep: bool = True
    ) -> tuple[Any, list[Any]]:
        """The model for key: its compilation's result if one was started, else compiled now
        (keep: see _compile)."""
        started = self._compiling.pop(key, None)
        if started is not None:
            return started.result()
        shape, streams = key if key is not None else (None, 1)
        return self._compile(shape, streams, keep=keep)

    def _outputs_of(self, request) -> list[np.ndarray]:
        return [request.get_tensor(name).data.copy() for name in self.outputs]

    def _compiled_for(self, shape: tuple[int, ...], streams: int = 1) -> tuple[Any, list[Any]]:
        key = (shape, streams)
        if key in self._static:
            self._static.move_to_end(key)
            return self._static[key]
        fixed = None not in self.input_shape
        seconds = self._compile_seconds or [COMPILE_SECONDS]
        cost = sum(seconds) / len(seconds)
        spent = self._spent.get(shape, 0.0) * DYNAMIC_OVERHEAD
        expected = fixed or streams > 1 or not self._static or key in self._compiling
        if expected or spent >= cost:
            if not fixed and not self._static:
                self._start(None)  # for the other shapes to come, while this one compiles
            self._static[key] = self._take(key, keep=expected)
            if streams == 1:
                self._spent.pop(shape, None)
            while len(self._static) > 1 and _pixels(self._static, self._bgr_input) > STATIC_PIXELS:
                self._static.popitem(last=False)
            return self._static[key]
        if self._dynamic is None:
            self._dynamic = self._take(None)
        return self._dynamic

    def _compile(
        self, shape: tuple[int, ...] | None, streams: int = 1, *, keep: bool = False
    ) -> tuple[Any, list[Any]]:
        """The compiled model and its requests. keep: read it from the user's cache folder or
        store it there (compiled.py), for the shapes a run asks for up front (its first
        shape, the coarse pass, the shape-agnostic model), not for those compiled by use,
        which are seldom the same from one video to the next."""
        config = dict(self.config)
        if streams > 1:
            config.update(
                {"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": streams},
                INFERENCE_NUM_THREADS=streams,
            )

        def compile_now() -> Any:
            # Reshaped here, not before the cache is read: a model read back needs no shape,
            # and reshaping CenterFace took 0.1 s of the first keyframe's wait.
            model = self.model
            if shape is not None and None in self.input_shape:
                model = model.clone()
                model.reshape(list(shape))
            return openvino_core().compile_model(model, "CPU", config)

        def read_back(data: bytes) -> Any:
            return openvino_core().import_model(data, "CPU", config)

        tag = "any" if shape is None else "x".join(map(str, shape)) + f"-{streams}"
        started = time.perf_counter()
        try:
            if keep:
                compiled, fresh = self._cache.compile(compile_now, read_back, tag)
            else:
                compiled, fresh = compile_now(), True
        except Exception as exc:
            reason = " ".join(str(exc).split())[:200]
            raise DetectorError(f"{self.name}: OpenVINO cannot compile it ({reason})") from exc
        if shape is not None and fresh:
            self._compile_seconds.append(time.perf_counter() - started)
        return compiled, [compiled.create_infer_request() for _ in range(streams)]


# What _reading_bgr adds to a model, in the compiled models' cache key: change it with them.
BGR_INPUT_STEPS = "u8-nhwc-bgr>rgb>float-or-bf16"


def _reading_bgr(model, *, bfloat16: bool = False):
    """The model taking frames as decoded (NHWC uint8 BGR) where it reads RGB float planes.
    OpenVINO joins the conversion to the reorder of its input into the convolutions' own
    layout, which it makes anyway, so inference takes as long and gives the same outputs,
    and the blob veil makes is a padded copy of the frame, a quarter of the float planes'
    size: detector preprocessing 1.1 -> 0.2-0.3 CPU ms a 720p frame and 3.5 -> 0.9-1.0 at
    1080p (`benchmarks/stages.py --frames 48`); the whole 1080p command 4% faster, 6% less CPU
    time, 60 MiB lower peak (four interleaved runs each; docs/speed.md).

    bfloat16: the bytes become bfloat16 rather than float32 on the way, for a network that
    computes in it (its first convolution would convert them anyway). Every byte value is
    exact in bfloat16, so the outputs are the same (both speed clips' videos and detections
    byte for byte, bf16 and INT8), and the reorder writes half the bytes: detect() in bf16
    22.8 against 23.2 ms at 1280x736 and 55.6 against 56.4 at 1920x1088, medians of three
    interleaved runs of benchmarks/detector_speed.py on the AMD EPYC of docs/speed.md, a gain
    smaller than the spread between runs."""
    ov = import_quietly("openvino")
    from openvino.preprocess import ColorFormat, PrePostProcessor

    steps = PrePostProcessor(model)
    tensor = steps.input().tensor()
    tensor.set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
    tensor.set_color_format(ColorFormat.BGR)
    steps.input().model().set_layout(ov.Layout("NCHW"))
    element = ov.Type.bf16 if bfloat16 else ov.Type.f32
    steps.input().preprocess().convert_color(ColorFormat.RGB).convert_element_type(element)
    return steps.build()


# --- INT8 ----------------------------------------------------------------------------


def cache_dir() -> Path:
    """Where veil keeps what it derives from models: $XDG_CACHE_HOME/veil, else ~/.cache/veil."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "veil"


def full_precision_layers(model) -> list[str]:
    """The convolutions that read the input or write an output.

    They quantize worst: the first sees raw pixels, the last produce the values the
    detector decodes (scores, box sizes, landmarks); both are cheap next to the body.
    """
    kinds = {"Convolution", "GroupConvolution", "ConvolutionBackpropData", "MatMul"}
    names = []
    for result in model.get_results():
        node = result.input_value(0).get_node()
        while node.get_type_name() not in kinds and node.get_input_size():
            node = node.input_value(0).get_node()
        if node.get_type_name() in kinds:
            names.append(node.get_friendly_name())
    frontier = list(model.get_parameters())
    seen: set[str] = set()
    while frontier:
        node = frontier.pop()
        for target in node.output(0).get_target_inputs():
            consumer = target.get_node()
            if consumer.get_friendly_name() in seen:
                continue
            seen.add(consumer.get_friendly_name())
            if consumer.get_type_name() in kinds:
                names.append(consumer.get_friendly_name())
            elif consumer.get_output_size():
                frontier.append(consumer)
    return sorted(set(names))


def quantized(model, source: bytes, calibration: Calibration, name: str):
    """The model with INT8 weights and activations, from the cache or quantized now.

    NNCF's post-training quantization on the calibration blobs, with each
    activation's range taken as the whole span seen (min-max): calibration photos
    are few, and NNCF's default (the mean of per-photo extremes) clips values that
    other photos reach; it cost 1.7 points of recall on wider_dev where min-max
    stays within 0.5. The cache key covers the model, the calibration data (its
    key) and the versions that shape the result; a cached model is read back
    without importing NNCF.
    """
    ov = import_quietly("openvino")
    try:
        nncf_version = importlib.metadata.version("nncf")
    except importlib.metadata.PackageNotFoundError:
        raise DetectorError(
            "precision int8 needs NNCF for the one-time quantization: pip install 'veil[openvino]'"
        ) from None
    digest = hashlib.sha256(source)
    digest.update(
        f"{calibration.key()} {INT8_RECIPE} openvino {ov.__version__} nncf {nncf_version}".encode()
    )
    folder = cache_dir() / "models" / f"int8-{digest.hexdigest()[:32]}"
    if (folder / "model.xml").is_file():
        try:
            return openvino_core().read_model(folder / "model.xml")
        except Exception as exc:
            log.warning("veil: warning: rebuilding the damaged INT8 model in %s (%s)", folder, exc)
    nncf = import_quietly("nncf")
    blobs = list(calibration.blobs())
    log.warning("veil: quantizing %s to INT8 for this CPU; once, cached in %s", name, folder.parent)
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    level = logging.getLogger("nncf").level
    nncf.set_log_level(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # its progress bars
            result = nncf.quantize(
                model,
                nncf.Dataset(blobs),
                subset_size=len(blobs),
                ignored_scope=nncf.IgnoredScope(names=full_precision_layers(model)),
                advanced_parameters=AdvancedQuantizationParameters(
                    activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX
                ),
            )
    finally:
        nncf.set_log_level(level)
    _store(result, folder)
    return result


def _store(model, folder: Path) -> None:
    """Write model.xml and model.bin into folder atomically: both appear at once or not at all."""
    ov = import_quietly("openvino")

    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".veil-partial-", dir=folder.parent))
    except OSError as exc:
        log.warning("veil: warning: cannot cache the INT8 model in %s (%s)", folder.parent, exc)
        return
    try:
        ov.save_model(model, staging / "model.xml", compress_to_fp16=False)
        shutil.rmtree(folder, ignore_errors=True)  # a damaged copy, if any
        os.rename(staging, folder)
    except OSError as exc:
        if not (folder / "model.xml").is_file():  # else another process stored it first
            log.warning("veil: warning: cannot cache the INT8 model in %s (%s)", folder, exc)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
