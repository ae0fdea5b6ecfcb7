"""deface's spellings of veil's settings, read in one place (docs/from-deface.md).

deface 1.5's users type its flags from habit and keep them in scripts; veil accepts
them with deface's meaning. Each function here turns one word of deface's into the
value of the veil option that declares deface's flag beside its own (`option()`),
so the config file, `veil config --show` and the web page see veil's values only.
Standard library only, like options.py, so every stage can declare with them. A word
that means nothing to either tool is a one-line OptionError naming the flag.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import OptionError

# deface's --replacewith names for veil's --method values.
METHODS = {"solid": "fill", "mosaic": "pixelate", "img": "image"}
# deface's --backend names for the runtimes veil has (deface's OpenCV runs the same
# CenterFace network; veil runs it on onnxruntime, which finds the same faces).
BACKENDS = {"onnxrt": "onnxruntime", "opencv": "onnxruntime"}
# onnxruntime execution providers (deface's --execution-provider) -> veil's --device.
PROVIDERS = {"cpu": "cpu", "cuda": "cuda", "tensorrt": "auto", "coreml": "auto"}
# deface's --ffmpeg-config keys (imageio's writer arguments) that veil's encoder has.
FFMPEG_KEYS = ("codec", "crf", "preset", "ffmpeg_params", "output_params")
FFMPEG_PARAMS = {"-crf": "crf", "-preset": "preset", "-c:v": "codec", "-vcodec": "codec"}


def method_name(text: str) -> str:
    """--method as typed: veil's name, or deface's name for the same method."""
    return METHODS.get(text, text)


def backend_name(text: str) -> str:
    """--backend as typed: veil's runtime name, or deface's (onnxrt, opencv)."""
    return BACKENDS.get(text, text)


def device_name(text: str) -> str:
    """--device as typed, or an onnxruntime execution provider as deface takes it
    ("CUDAExecutionProvider", "CPU"): TensorRT and CoreML are what --device auto picks."""
    word = text.strip().lower().removesuffix("executionprovider")
    if word in ("cpu", "cuda", "auto"):
        return word
    if word in PROVIDERS:
        return PROVIDERS[word]
    raise OptionError(
        f"--device: unknown device or execution provider {text!r}; use cpu, cuda, auto or "
        "one of CPUExecutionProvider, CUDAExecutionProvider, TensorrtExecutionProvider, "
        "CoreMLExecutionProvider"
    )


def input_size(text: str) -> int:
    """The detector input's longer side: PX, or deface's --scale WxH.

    deface stretches every frame to WxH; veil keeps the aspect ratio and caps the
    longer side at max(W, H), which is the same input for frames of that shape and
    never distorts a face of another shape.
    """
    width, sep, height = text.lower().partition("x")
    try:
        size = max(int(width), int(height)) if sep else int(text)
    except ValueError:
        raise OptionError(
            f"--max-size/--scale: expected PX or WxH (640x360), got {text!r}"
        ) from None
    if size <= 0:
        raise OptionError(f"--max-size/--scale must be more than 0, got {text!r}")
    return size


def encoder_settings(text: str) -> tuple[tuple[str, Any], ...]:
    """deface's --ffmpeg-config JSON -> (EncoderOptions field, value) pairs.

    imageio's writer took the codec by name and x264's settings as raw ffmpeg
    arguments; veil's encoder has codec, crf and preset. Anything else (fps, bitrate,
    quality, pixelformat) is refused by name rather than ignored: veil keeps each
    frame's own time and encodes at a constant quality.
    """
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise OptionError(f"--ffmpeg-config: not JSON ({exc.msg}): {text!r}") from None
    if not isinstance(config, dict):
        raise OptionError(
            f'--ffmpeg-config: expected a JSON object such as {{"codec": "libx264"}}, got {text!r}'
        )
    settings: dict[str, Any] = {}
    for key, value in config.items():
        if key not in FFMPEG_KEYS:
            raise OptionError(
                f"--ffmpeg-config: unsupported key {key!r}; veil's encoder takes "
                f"{', '.join(FFMPEG_KEYS)}"
            )
        if key in ("ffmpeg_params", "output_params"):
            settings.update(_ffmpeg_params(value))
        else:
            settings[key] = value
    return tuple((name, _typed(name, value)) for name, value in settings.items())


def _ffmpeg_params(value: Any) -> dict[str, Any]:
    words = value.split() if isinstance(value, str) else list(value)
    if len(words) % 2 or any(w not in FFMPEG_PARAMS for w in words[::2]):
        raise OptionError(
            f"--ffmpeg-config: unsupported ffmpeg arguments {words}; veil takes pairs of "
            f"{', '.join(FFMPEG_PARAMS)}"
        )
    return {FFMPEG_PARAMS[flag]: word for flag, word in zip(words[::2], words[1::2])}


def _typed(name: str, value: Any) -> Any:
    if name == "crf":
        try:
            return int(value)
        except (TypeError, ValueError):
            raise OptionError(
                f"--ffmpeg-config: crf must be a whole number, got {value!r}"
            ) from None
    if not isinstance(value, str):
        raise OptionError(f"--ffmpeg-config: {name} must be text, got {value!r}")
    return value
