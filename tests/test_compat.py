"""deface's words for veil's settings (veil.compat)."""

import pytest

from veil.compat import backend_name, device_name, encoder_settings, input_size, method_name
from veil.errors import OptionError
from veil.io.video import EncoderOptions


@pytest.mark.parametrize(
    "deface, veil", [("solid", "fill"), ("mosaic", "pixelate"), ("img", "image"), ("blur", "blur")]
)
def test_method_names(deface, veil):
    assert method_name(deface) == veil


@pytest.mark.parametrize("deface, veil", [("onnxrt", "onnxruntime"), ("opencv", "onnxruntime")])
def test_backend_names(deface, veil):
    assert backend_name(deface) == veil


@pytest.mark.parametrize(
    "text, device",
    [
        ("CPUExecutionProvider", "cpu"),
        ("CUDAExecutionProvider", "cuda"),
        ("TensorrtExecutionProvider", "auto"),
        ("CoreMLExecutionProvider", "auto"),
        ("cuda", "cuda"),
    ],
)
def test_execution_providers_are_devices(text, device):
    assert device_name(text) == device


def test_an_unknown_provider_is_refused():
    with pytest.raises(OptionError, match="unknown device or execution provider"):
        device_name("ROCMExecutionProvider")


@pytest.mark.parametrize("text, size", [("640x360", 640), ("360X640", 640), ("800", 800)])
def test_scale_caps_the_longer_side(text, size):
    assert input_size(text) == size


@pytest.mark.parametrize("text", ["640x", "wide", "0x0"])
def test_a_bad_scale_is_refused(text):
    with pytest.raises(OptionError):
        input_size(text)


def test_ffmpeg_config_maps_onto_the_encoder_options():
    settings = encoder_settings(
        '{"codec": "libx265", "output_params": ["-preset", "slow", "-crf", "24"]}'
    )
    assert dict(settings) == {"codec": "libx265", "preset": "slow", "crf": 24}
    encoder = EncoderOptions(ffmpeg_config=settings)
    assert (encoder.codec, encoder.preset, encoder.crf) == ("libx265", "slow", 24)


def test_ffmpeg_config_checks_what_it_sets():
    with pytest.raises(OptionError, match="--crf must be"):
        EncoderOptions(ffmpeg_config=encoder_settings('{"crf": -3}'))


@pytest.mark.parametrize("text", ['{"bitrate": "4M"}', "[1, 2]", '{"preset": 5}'])
def test_ffmpeg_config_refuses_what_veil_cannot_do(text):
    with pytest.raises(OptionError, match="--ffmpeg-config"):
        encoder_settings(text)
