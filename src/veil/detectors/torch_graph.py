"""ONNX models on PyTorch: the GPU path where PyTorch has CUDA and onnxruntime-gpu is missing.

Many machines with an NVIDIA GPU have PyTorch built for it but not onnxruntime-gpu, whose
wheel must match the CUDA libraries it finds. PyTorch has no ONNX importer, and veil's
detector graphs are plain (CenterFace: convolutions, transposed convolutions, batch norms,
ReLUs, additions, one sigmoid; PP-OCR's text detector adds resizing, concatenation and a
few activations), so `Program` runs the graph node by node on torch's functional
operations. Weights become tensors on the device once; a value is dropped after its last
reader, so a batch of 32 1080p frames holds only the activations still needed. A graph
with an operation outside OPS, or one that computes shapes at run time, is refused when
it loads, with the operation's name (`load_engine` then falls back to onnxruntime unless
this backend was asked for by name).

On a GPU, "auto" precision is float16 for models whose recall was measured in it (as on
onnxruntime's CUDA provider). Tensors are kept in channels-last order, which the tensor
cores' convolutions read without a transpose (on a CPU oneDNN's too: CenterFace ran 2.5x
faster in it than in planar order); frames go to the device as uint8 (a quarter of the
bytes of float planes) and become the network's RGB float planes there.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DetectorError
from .runtime import OneAtATime, handed_shape, plain_precision

log = logging.getLogger("veil")

# Device nodes of NVIDIA's Linux driver: without them no CUDA GPU is usable, so `--device auto`
# need not import PyTorch (over a second) to find out.
NVIDIA_NODES = ("/dev/nvidiactl", "/dev/nvidia0", "/proc/driver/nvidia/version")


@lru_cache(maxsize=1)
def torch_cuda() -> bool:
    """Whether PyTorch is installed and sees a CUDA GPU (imports torch only where an NVIDIA
    driver is present, or on systems other than Linux, where its device nodes differ)."""
    if importlib.util.find_spec("torch") is None:
        return False
    if platform.system() == "Linux" and not any(Path(p).exists() for p in NVIDIA_NODES):
        return False
    import torch

    return bool(torch.cuda.is_available())


def _import_torch():
    try:
        import torch
    except ImportError:
        raise DetectorError(
            "the torch backend needs PyTorch: pip install torch (see pytorch.org for a build "
            "with CUDA)"
        ) from None
    return torch


class Unsupported(DetectorError):
    """The graph needs what Program does not run (an operation, an attribute, a shape
    computed at run time)."""


# --- operations ----------------------------------------------------------------------
# Each takes (torch, attrs, *inputs) and returns one tensor or a tuple. Inputs are tensors,
# None where ONNX leaves an optional input empty, or for STATIC_INPUTS the constant's values
# as a list, read when the graph loads.


def _pads(attrs: dict, rank: int) -> tuple[list[int], list[int]]:
    if attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        raise Unsupported(f"auto_pad={attrs['auto_pad']}")
    pads = attrs.get("pads", [0] * 2 * rank)
    return pads[:rank], pads[rank:]


def _padded(t, x, attrs: dict, value: float = 0.0):
    """x with ONNX's pads applied where torch's symmetric padding cannot express them, and
    the symmetric padding left for the operation itself."""
    begin, end = _pads(attrs, x.dim() - 2)
    if begin == end:
        return x, tuple(begin)
    flat = [p for b, e in zip(reversed(begin), reversed(end)) for p in (b, e)]
    return t.nn.functional.pad(x, flat, value=value), (0,) * len(begin)


def _spatial(x, op: str) -> None:
    if x.dim() != 4:
        raise Unsupported(f"{op} on {x.dim()}-D tensors (2-D images only)")


def _conv(t, attrs, x, w, b=None):
    _spatial(x, "Conv")
    x, padding = _padded(t, x, attrs)
    return t.nn.functional.conv2d(
        x,
        w,
        b,
        attrs.get("strides", [1, 1]),
        padding,
        attrs.get("dilations", [1, 1]),
        attrs.get("group", 1),
    )


def _conv_transpose(t, attrs, x, w, b=None):
    _spatial(x, "ConvTranspose")
    if "output_shape" in attrs:
        raise Unsupported("ConvTranspose with output_shape")
    begin, end = _pads(attrs, 2)
    y = t.nn.functional.conv_transpose2d(
        x,
        w,
        b,
        attrs.get("strides", [1, 1]),
        tuple(begin) if begin == end else 0,
        attrs.get("output_padding", [0, 0]),
        attrs.get("group", 1),
        attrs.get("dilations", [1, 1]),
    )
    if begin != end:
        y = y[:, :, begin[0] : y.shape[2] - end[0], begin[1] : y.shape[3] - end[1]]
    return y


def _batch_norm(t, attrs, x, scale, bias, mean, var):
    if attrs.get("spatial", 1) != 1:
        raise Unsupported("BatchNormalization with spatial=0")
    return t.nn.functional.batch_norm(
        x, mean, var, scale, bias, False, 0.0, attrs.get("epsilon", 1e-5)
    )


def _max_pool(t, attrs, x):
    _spatial(x, "MaxPool")
    if attrs.get("storage_order", 0):
        raise Unsupported("MaxPool with storage_order=1")
    kernel = attrs["kernel_shape"]
    x, padding = _padded(t, x, attrs, value=float("-inf"))
    return t.nn.functional.max_pool2d(
        x,
        kernel,
        attrs.get("strides", [1] * len(kernel)),
        padding,
        attrs.get("dilations", [1] * len(kernel)),
        bool(attrs.get("ceil_mode", 0)),
    )


def _clip(t, attrs, x, low=None, high=None):
    low = attrs.get("min") if low is None else low
    high = attrs.get("max") if high is None else high
    return x.clamp(low, high)


def _softmax(t, attrs, x, *, opset: int):
    axis = attrs.get("axis", -1 if opset >= 13 else 1) % x.dim()
    if opset >= 13 or axis == x.dim() - 1:
        return x.softmax(axis)
    # Before opset 13 the tensor is flattened to 2-D at axis, softmax over the second part.
    return x.flatten(axis).softmax(axis).reshape(x.shape)


def _resize_op(t, attrs, x, *inputs, opset: int):
    """Resize's inputs: (scales) before opset 11, (roi, scales, sizes) from it."""
    if opset < 11:
        return _resize(t, attrs, x, inputs[0] if inputs else None, None, upsample=True)
    roi, scales, sizes = (*inputs, None, None, None)[:3]
    return _resize(t, attrs, x, scales, sizes, upsample=False)


def _resize(t, attrs, x, scales, sizes, *, upsample: bool):
    """Resize and Upsample (upsample: asymmetric coordinates, Resize's default before opset
    11) where torch's interpolate gives the same pixels."""
    _spatial(x, "Resize")
    mode = attrs.get("mode", "nearest")
    transform = attrs.get(
        "coordinate_transformation_mode", "asymmetric" if upsample else "half_pixel"
    )
    for name, plain in (("antialias", 0), ("axes", None), ("keep_aspect_ratio_policy", "stretch")):
        if attrs.get(name, plain) != plain:
            raise Unsupported(f"Resize with {name}={attrs[name]}")
    if sizes is not None and len(sizes):
        if list(sizes[:2]) != list(x.shape[:2]):
            raise Unsupported("Resize of the batch or channel axes")
        target = {"size": [int(s) for s in sizes[2:]]}
        factors = [s / n for s, n in zip(target["size"], x.shape[2:])]
    else:
        if scales is None or list(scales[:2]) != [1, 1]:
            raise Unsupported("Resize of the batch or channel axes")
        factors = [float(s) for s in scales[2:]]
        target = {"scale_factor": factors, "recompute_scale_factor": False}
    if transform == "tf_crop_and_resize":
        pass
    elif mode == "nearest":
        whole = all(f == int(f) and f >= 1 for f in factors)
        rounding = attrs.get("nearest_mode", "round_prefer_floor")
        # For whole upscaling factors every ONNX rounding picks torch's pixel; otherwise only
        # asymmetric coordinates rounded down are torch's nearest.
        if whole or (transform == "asymmetric" and (upsample or rounding == "floor")):
            return t.nn.functional.interpolate(x, mode="nearest", **target)
    elif mode == "linear":
        if transform in ("half_pixel", "pytorch_half_pixel", "align_corners"):
            corners = transform == "align_corners"
            return t.nn.functional.interpolate(x, mode="bilinear", align_corners=corners, **target)
    raise Unsupported(f"Resize mode={mode} coordinate_transformation_mode={transform}")


def _reshape(t, attrs, x, shape):
    dims = [int(d) for d in shape]
    if not attrs.get("allowzero", 0):
        dims = [x.shape[i] if d == 0 else d for i, d in enumerate(dims)]
    return x.reshape(dims)


def _flatten(t, attrs, x):
    axis = attrs.get("axis", 1) % (x.dim() + 1) if x.dim() else 0
    return x.reshape(int(np.prod(x.shape[:axis], dtype=np.int64)), -1)


def _transpose(t, attrs, x):
    return x.permute(attrs.get("perm", list(reversed(range(x.dim())))))


def _divide(t, attrs, a, b):
    if a.is_floating_point() or b.is_floating_point():
        return a / b
    return a.div(b, rounding_mode="trunc")


# Activations that can overwrite their input (see Program).
IN_PLACE: dict[str, Callable[..., Any]] = {
    "Relu": lambda t, attrs, x: x.relu_(),
    "LeakyRelu": lambda t, attrs, x: t.nn.functional.leaky_relu_(x, attrs.get("alpha", 0.01)),
    "Sigmoid": lambda t, attrs, x: x.sigmoid_(),
}

# Operations whose output may share its input's memory.
VIEWS = frozenset({"Identity", "Dropout", "Reshape", "Flatten", "Transpose"})

# Which inputs are parameters read when the graph loads rather than tensors: (op, input index).
STATIC_INPUTS = {("Resize", 1), ("Resize", 2), ("Resize", 3), ("Upsample", 1), ("Reshape", 1)}
# Clip's bounds are inputs from opset 11 and stay tensors (of the graph's float type).

OPS: dict[str, Callable[..., Any]] = {
    "Conv": _conv,
    "ConvTranspose": _conv_transpose,
    "BatchNormalization": _batch_norm,
    "MaxPool": _max_pool,
    "GlobalAveragePool": lambda t, attrs, x: x.mean(tuple(range(2, x.dim())), keepdim=True),
    "Relu": lambda t, attrs, x: t.nn.functional.relu(x),
    "LeakyRelu": lambda t, attrs, x: t.nn.functional.leaky_relu(x, attrs.get("alpha", 0.01)),
    "PRelu": lambda t, attrs, x, slope: x.where(x >= 0, x * slope),
    "Sigmoid": lambda t, attrs, x: x.sigmoid(),
    "HardSigmoid": lambda t, attrs, x: (x * attrs.get("alpha", 0.2) + attrs.get("beta", 0.5)).clamp(
        0, 1
    ),
    "HardSwish": lambda t, attrs, x: t.nn.functional.hardswish(x),
    "Tanh": lambda t, attrs, x: x.tanh(),
    "Exp": lambda t, attrs, x: x.exp(),
    "Clip": _clip,
    "Add": lambda t, attrs, a, b: a + b,
    "Sub": lambda t, attrs, a, b: a - b,
    "Mul": lambda t, attrs, a, b: a * b,
    "Div": _divide,
    "Concat": lambda t, attrs, *xs: t.cat(xs, attrs["axis"]),
    "Identity": lambda t, attrs, x: x,
    "Dropout": lambda t, attrs, x, *rest: x,
    "Reshape": _reshape,
    "Flatten": _flatten,
    "Transpose": _transpose,
    "Softmax": _softmax,
    "Resize": _resize_op,
    "Upsample": lambda t, attrs, x, scales=None: _resize(
        t, attrs, x, attrs.get("scales", scales), None, upsample=True
    ),
}


def _attributes(node) -> dict[str, Any]:
    from onnx import helper, numpy_helper

    attrs = {}
    for attr in node.attribute:
        value = helper.get_attribute_value(attr)
        if isinstance(value, bytes):
            value = value.decode()
        elif hasattr(value, "dims"):  # a TensorProto
            value = numpy_helper.to_array(value)
        attrs[attr.name] = value
    return attrs


@dataclass
class Step:
    """One node: its operation, attributes, inputs (see Program._step) and outputs; drop: the
    values read for the last time here."""

    op_type: str
    op: Callable[..., Any]
    attrs: dict[str, Any]
    args: list[tuple[bool, Any]]
    outputs: list[str]
    drop: list[str] = field(default_factory=list)


def _drop_after_last_reader(steps: list[Step], keep: set[str]) -> None:
    """Mark each value to be dropped after its last reader, except those in keep (the
    graph's outputs and weights)."""
    last: dict[str, int] = {}
    for position, step in enumerate(steps):
        for computed, value in step.args:
            if computed:
                last[value] = position
    for value, position in last.items():
        if value not in keep:
            steps[position].drop.append(value)


class Program:
    """An ONNX graph as a list of torch calls on one device, in one float type.

    model: ONNX bytes or file. outputs: the names to return (default: the graph's).
    dtype: the float type of weights and activations (inputs are cast to it, outputs back
    to float32). channels_last: keep 4-D tensors in NHWC memory order.
    """

    def __init__(
        self,
        model: bytes | str | os.PathLike,
        torch,
        *,
        device: str,
        dtype,
        channels_last: bool = False,
        outputs: Sequence[str] | None = None,
        name: str = "model",
    ) -> None:
        import onnx
        from onnx import numpy_helper

        proto = onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(model)
        graph = proto.graph
        opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 1)
        self.torch, self.name = torch, name
        self.dtype, self.device = dtype, device
        self.channels_last = channels_last
        static: dict[str, np.ndarray] = {
            init.name: numpy_helper.to_array(init) for init in graph.initializer
        }
        inputs = [v for v in graph.input if v.name not in static]
        if len(inputs) != 1:
            raise DetectorError(f"{name}: one input expected, the model has {len(inputs)}")
        self.input = inputs[0].name
        # The input's dims as the graph declares them (None where symbolic).
        self.input_dims = [d.dim_value or None for d in inputs[0].type.tensor_type.shape.dim]
        self.outputs = list(outputs) if outputs else [v.name for v in graph.output]
        self.steps: list[Step] = []
        for node in graph.node:
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
                static[node.output[0]] = self._constant(_attributes(node), node.output[0])
            else:
                self.steps.append(self._step(node, static, opset))
        self.weights = {key: self._tensor(array) for key, array in static.items()}
        _drop_after_last_reader(self.steps, {*self.outputs, *self.weights})
        # An activation whose input is read for the last time here overwrites it: a pass over
        # the memory and an allocation fewer. Not the graph's input (the caller's), nor a view
        # (a reshape's output shares its input's memory, which may still be read).
        made_by = {out: step.op_type for step in self.steps for out in step.outputs}
        for step in self.steps:
            first = step.args[0][1] if step.args and step.args[0][0] else None
            if (
                step.op_type in IN_PLACE
                and first in step.drop
                and first != self.input
                and made_by[first] not in VIEWS
            ):
                step.op = IN_PLACE[step.op_type]
        known = {self.input, *self.weights}.union(*(step.outputs for step in self.steps))
        missing = [v for v in self.outputs if v not in known]
        if missing:
            raise DetectorError(f"{name}: no output named {', '.join(missing)}")

    def _step(self, node, static: dict[str, np.ndarray], opset: int) -> Step:
        op = OPS.get(node.op_type) if node.domain in ("", "ai.onnx") else None
        if op is None:
            raise Unsupported(
                f"{self.name}: the torch backend does not run the {node.op_type} operation"
            )
        if node.op_type in ("Softmax", "Resize"):  # their meaning changed with the opset
            op = _bind_opset(op, opset)
        args: list[tuple[bool, Any]] = []  # (a value computed at run time, its name or value)
        for index, value in enumerate(node.input):
            if not value:
                args.append((False, None))
            elif (node.op_type, index) in STATIC_INPUTS:
                if value not in static:
                    raise Unsupported(
                        f"{self.name}: {node.op_type} reads a shape or scale computed at run time"
                    )
                args.append((False, static[value].tolist()))
            else:
                args.append((True, value))
        return Step(node.op_type, op, _attributes(node), args, list(node.output))

    def _constant(self, attrs: dict, output: str) -> np.ndarray:
        for key, kind in (
            ("value", None),
            ("value_float", np.float32),
            ("value_floats", np.float32),
            ("value_int", np.int64),
            ("value_ints", np.int64),
        ):
            if key in attrs:
                return np.asarray(attrs[key], dtype=kind)
        raise Unsupported(f"{self.name}: Constant {output} of a kind the torch backend lacks")

    def _tensor(self, array: np.ndarray):
        """A weight on the device: floats in the program's type, 4-D ones channels-last."""
        tensor = self.torch.from_numpy(np.array(array))  # a writable copy
        if tensor.is_floating_point():
            tensor = tensor.to(self.dtype)
        tensor = tensor.to(self.device)
        if self.channels_last and tensor.dim() == 4:
            tensor = tensor.contiguous(memory_format=self.torch.channels_last)
        return tensor

    def __call__(self, x) -> list:
        """Run on the input tensor (already on the device, in the program's type); the
        outputs asked for, as tensors on the device."""
        values = dict(self.weights)
        values[self.input] = x
        for step in self.steps:
            inputs = [values[v] if computed else v for computed, v in step.args]
            try:
                result = step.op(self.torch, step.attrs, *inputs)
            except Unsupported as exc:
                raise Unsupported(f"{self.name}: the torch backend does not run {exc}") from None
            except Exception as exc:
                raise DetectorError(f"{self.name}: {step.op_type} failed ({exc})") from exc
            results = result if isinstance(result, tuple) else (result,)
            values.update(zip(step.outputs, results))
            for value in step.drop:
                del values[value]
        return [values[v] for v in self.outputs]


def _bind_opset(op, opset: int):
    return lambda t, attrs, *xs: op(t, attrs, *xs, opset=opset)


class TorchEngine(OneAtATime):
    """An ONNX model on PyTorch: CUDA where asked for and usable, else the CPU.

    measured: the model's recall was measured in float16, so "auto" takes it on a GPU;
    other models keep float32 unless asked. bgr_input: handed frames as decoded (NHWC
    uint8 BGR), made into the network's RGB float planes on the device.
    """

    backend = "torch"

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
        torch = _import_torch()
        self.torch = torch
        self.device = "cuda" if options.device != "cpu" and torch.cuda.is_available() else "cpu"
        if options.device == "cuda" and self.device == "cpu":
            log.warning(
                "veil: warning: --device cuda: PyTorch %s sees no CUDA GPU; running on the CPU",
                torch.__version__,
            )
        self.on_cpu = self.device == "cpu"
        self.precision = plain_precision(
            options.precision, on_gpu=not self.on_cpu, measured=measured
        )
        if self.on_cpu:
            if options.threads:
                torch.set_num_threads(options.threads)
            self.provider = "PyTorch CPU"
        else:
            self.provider = f"PyTorch CUDA ({torch.cuda.get_device_name()})"
        # Convolutions on PyTorch's own CUDA kernels, not cuDNN's. cuDNN plans every new input
        # shape before its first run, and the closer looks at small faces come in many sizes:
        # on an H200 with cuDNN 9.19 the first run of a new shape took 1.6-2.6 s through cuDNN
        # and 0.03-0.15 s without it, and later runs took the same time either way
        # (docs/speed.md, "Measured on an NVIDIA H200"; benchmarks/gpu.py, "New input
        # shapes"; cuDNN's benchmark mode, which times kernels per shape, took 3.6-5.7 s).
        # Set around each run, not for the whole process.
        self.cudnn = False
        self.program = Program(
            model,
            torch,
            device=self.device,
            dtype=torch.float16 if self.precision == "fp16" else torch.float32,
            channels_last=True,
            outputs=outputs,
            name=name,
        )
        self._bgr_input = bgr_input
        dims = self.program.input_dims
        self.input_shape = handed_shape(dims, bgr_input)
        # What the graph needs that Program lacks may depend on the tensors (their rank), and
        # load_engine can fall back to onnxruntime only now: one pass on a black input of the
        # declared shape (1 and 64 where symbolic) finds it here, not at the first frame.
        shape, channels = self.input_shape, len(dims) - 1 if bgr_input else 1
        trial = [d or (1 if i == 0 else 3 if i == channels else 64) for i, d in enumerate(shape)]
        self.run(np.zeros(trial, np.uint8 if bgr_input else np.float32))

    def to_input(self, blob: np.ndarray):
        """The blob as the program's input: a tensor on the device, in its type and order."""
        torch = self.torch
        blob = np.ascontiguousarray(blob)
        x = torch.from_numpy(blob if blob.flags.writeable else blob.copy()).to(self.device)
        if self._bgr_input:
            # NHWC BGR -> NCHW RGB: the channels reversed, then a view whose memory is
            # channels-last; one more copy into the program's type and memory order.
            x = x.flip(3).permute(0, 3, 1, 2)
        if x.dim() != 4:
            return x.to(self.program.dtype)
        memory = torch.channels_last if self.program.channels_last else torch.contiguous_format
        return x.to(self.program.dtype, memory_format=memory)

    def forward(self, x) -> list:
        """The program on an input from to_input, its outputs left where they are."""
        cudnn = self.torch.backends.cudnn
        saved, cudnn.enabled = cudnn.enabled, self.cudnn  # only this one of cuDNN's settings
        try:
            with self.torch.inference_mode():
                return self.program(x)
        finally:
            cudnn.enabled = saved

    def run(self, blob: np.ndarray) -> list[np.ndarray]:
        return [out.float().cpu().numpy() for out in self.forward(self.to_input(blob))]
