"""Your own detector: `--detector onnx:PATH` with the face models people already have.

The layout is recognised from the graph itself, never assumed: output names
and the shapes of one probe run at load (plus ultralytics' metadata), checked
against each family in `LAYOUTS` in turn (docs/targets.md lists them):
YOLOv5-face, ultralytics YOLOv5/YOLOv8/YOLO11 (boxes or keypoints), SCRFD,
RetinaFace (Pytorch_Retinaface) and YuNet (2022 and 2023). A model that
matches none is a one-line `DetectorError` naming the shapes seen, and scores
outside 0..1 are one too: a model read the wrong way must not quietly find
nothing.

Each family's input convention (colour order, normalisation, letterbox or
top-left placement, size) is followed; a fixed input runs at its declared
size, a dynamic one at `--max-size` if given, else the family's usual size
(640 for YOLO and SCRFD, the frame's own for RetinaFace and YuNet).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from ...detections import Detections
from ...errors import DetectorError, OptionError
from ..base import Detector, DetectorOptions
from . import retinaface, scrfd, yolo, yunet
from .common import Convention, Graph, Layout, Tensor

# Tried in this order; the first that recognises the graph decodes it.
LAYOUTS: tuple[Callable[[Graph], Layout | None], ...] = (
    yolo.match,
    scrfd.match,
    retinaface.match,
    yunet.match,
)
SUPPORTED = "YOLOv5-face, YOLOv5/YOLOv8/YOLO11 (ultralytics), SCRFD, RetinaFace, YuNet"
PROBE_SIDE = 640


def _dims(value) -> tuple[int | str, ...]:
    return tuple(
        d.dim_value if d.HasField("dim_value") else d.dim_param or "?"
        for d in value.type.tensor_type.shape.dim
    )


def read_interface(path: Path) -> tuple[Tensor, list[str], dict[str, str]]:
    """The declared image input, the output names and the metadata, from the file itself."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf and onnx raise their own types for damaged files
        raise DetectorError(
            f"cannot load ONNX model {path}: {' '.join(str(exc).split())[:200]}"
        ) from exc
    graph = model.graph
    weights = {init.name for init in graph.initializer}
    inputs = [v for v in graph.input if v.name not in weights]
    if len(inputs) != 1:
        raise DetectorError(f"{path.name}: takes {len(inputs)} inputs; an image model takes one")
    image = Tensor(inputs[0].name, _dims(inputs[0]))
    channels = image.shape[1] if len(image.shape) == 4 else None
    if channels is None or isinstance(channels, int) and channels != 3:
        raise DetectorError(f"{path.name}: input {image} is not an image batch [1, 3, H, W]")
    metadata = {p.key: p.value for p in model.metadata_props}
    return image, [o.name for o in graph.output], metadata


def identify(graph: Graph) -> Layout:
    """The layout of the first family that recognises the graph; a one-line error otherwise."""
    for match in LAYOUTS:
        layout = match(graph)
        if layout is not None:
            return layout
    raise DetectorError(f"unrecognised model outputs ({graph.describe()}); veil reads {SUPPORTED}")


def prepare(
    frame: np.ndarray, convention: Convention, fixed: tuple[int, int] | None, side: int | None
) -> tuple[np.ndarray, tuple[float, float], tuple[int, int]]:
    """A BGR frame -> the network's [1, 3, H, W] blob, the x/y scale and the (left, top) offset.

    A fixed input is filled keeping the aspect ratio; a dynamic one gets the
    frame scaled to `side` on its longer side (None: unscaled) and padded to
    the family's alignment.
    """
    h, w = frame.shape[:2]
    if fixed:
        scale = min(fixed[0] / h, fixed[1] / w)
    else:
        scale = 1.0 if side is None else side / max(h, w)
    rh, rw = max(1, round(h * scale)), max(1, round(w * scale))
    if fixed:
        ih, iw = fixed
    else:
        a = convention.align
        ih, iw = -(-rh // a) * a, -(-rw // a) * a
    left, top = ((iw - rw) // 2, (ih - rh) // 2) if convention.centred else (0, 0)
    canvas = np.full((ih, iw, 3), convention.pad, np.uint8)
    canvas[top : top + rh, left : left + rw] = (
        frame if (rh, rw) == (h, w) else cv2.resize(frame, (rw, rh), interpolation=cv2.INTER_LINEAR)
    )
    image = canvas[:, :, ::-1] if convention.rgb else canvas
    blob = (image.astype(np.float32) - np.asarray(convention.mean, np.float32)) / convention.std
    return np.ascontiguousarray(blob.transpose(2, 0, 1)[None]), (rw / w, rh / h), (left, top)


def to_frame(
    dets: Detections, scale: tuple[float, float], offset: tuple[int, int], width: int, height: int
) -> Detections:
    """Input pixels -> frame pixels (undo the padding, then the resize), clipped to the frame."""
    shift = np.asarray(offset, np.float32)
    lm = None if dets.landmarks is None else dets.landmarks - shift
    moved = dets.with_(xyxy=dets.xyxy - np.tile(shift, 2), landmarks=lm)
    return moved.scaled(1 / scale[0], 1 / scale[1]).clipped(width, height)


class OnnxModel(Detector):
    """A detector exported to ONNX in one of the known layouts, on onnxruntime."""

    backend = "onnxruntime"

    def __init__(self, options: DetectorOptions, path: str | Path) -> None:
        from ..centerface import device_of, make_session

        self.options = options
        path = Path(path)
        if not path.is_file():
            raise DetectorError(f"model file not found: {path}")
        image, names, metadata = read_interface(path)
        h, w = image.shape[2:]
        fixed = isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0
        self.fixed = (int(h), int(w)) if fixed else None
        # float16 only on request: user graphs may hold weights that must stay float32.
        self.session = make_session(
            path, options.device, options.threads, fp16=options.precision == "fp16"
        )
        self.device = device_of(self.session.get_providers()[0])
        self.precision = "fp16" if options.precision == "fp16" else "fp32"
        self.input_name = image.name
        probe_hw = self.fixed or (PROBE_SIDE, PROBE_SIDE)
        probe = self._run(np.zeros((1, 3, *probe_hw), np.float32))
        outputs = tuple(Tensor(n, tuple(o.shape)) for n, o in zip(names, probe))
        try:
            self.layout = identify(Graph(image, outputs, metadata, probe))
            self.layout.decode(probe, *probe_hw, threshold=2.0)  # scores out of 0..1 fail at load
        except DetectorError as exc:
            raise DetectorError(f"{path.name}: {exc}") from None
        self.classes = yolo.parse_classes(options.classes)
        known = self.layout.classes
        if self.classes and known and max(self.classes) >= known:
            raise OptionError(
                f"--classes {options.classes}: the model ({self.layout.name}) has "
                f"{known} class{'es' if known > 1 else ''}, numbered from 0"
            )

    def _run(self, blob: np.ndarray) -> list[np.ndarray]:
        try:
            return self.session.run(None, {self.input_name: blob})
        except Exception as exc:  # onnxruntime raises its own types for shape errors
            raise DetectorError(
                f"the model failed on a {blob.shape[2]}x{blob.shape[3]} input: "
                f"{' '.join(str(exc).split())[:200]}"
            ) from exc

    def detect_one(self, frame: np.ndarray) -> Detections:
        conv = self.layout.convention
        blob, scale, offset = prepare(frame, conv, self.fixed, self.options.max_size or conv.side)
        outputs = self._run(blob)
        dets = self.layout.decode(outputs, blob.shape[2], blob.shape[3], self.options.threshold)
        dets = to_frame(dets, scale, offset, frame.shape[1], frame.shape[0])
        if self.classes is None:
            return dets
        kept = dets[np.isin(dets.class_id, list(self.classes))]
        return kept.with_(
            class_id=np.array([self.classes[int(c)] for c in kept.class_id], np.int32)
        )

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        return [self.detect_one(f) for f in frames]


def from_spec(options: DetectorOptions) -> OnnxModel:
    """Factory for names of the form 'onnx:PATH'."""
    return OnnxModel(options, options.name.split(":", 1)[1])


__all__ = ["OnnxModel", "LAYOUTS", "identify", "prepare", "from_spec"]
