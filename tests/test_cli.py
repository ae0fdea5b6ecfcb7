import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from veil.cli import main
from veil.io.images import read_image

from media import mean_abs_diff, run_veil


@pytest.fixture()
def photo(tmp_path, astronaut):
    path = tmp_path / "portrait.jpg"
    Image.fromarray(astronaut[:, :, ::-1]).save(path, quality=95)
    return path


def test_image_beside_input(photo, astronaut):
    assert main([str(photo), "-q"]) == 0
    out = photo.with_name("portrait_anonymized.jpg")
    img = read_image(out).image
    assert mean_abs_diff(img[80:160, 200:250], astronaut[80:160, 200:250]) > 12
    assert mean_abs_diff(img[400:], astronaut[400:]) < 3


def test_never_overwrites_unless_asked(photo):
    before = photo.read_bytes()
    assert main([str(photo), "-q"]) == 0
    assert main([str(photo), "-q"]) == 0
    names = sorted(p.name for p in photo.parent.iterdir())
    assert names == ["portrait.jpg", "portrait_anonymized (2).jpg", "portrait_anonymized.jpg"]
    assert main([str(photo), "-q", "--overwrite"]) == 0
    assert len(list(photo.parent.iterdir())) == 3
    assert photo.read_bytes() == before
    assert main([str(photo), "-o", str(photo), "-q", "--overwrite"]) == 3


def test_folder_mirrored_to_output_dir(tmp_path, photo):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    Image.open(photo).save(tmp_path / "in" / "a.png")
    Image.open(photo).save(tmp_path / "in" / "sub" / "b.jpg")
    assert main([str(tmp_path / "in"), "-r", "-o", str(tmp_path / "out"), "-q"]) == 0
    assert (tmp_path / "out" / "a.png").exists()
    assert (tmp_path / "out" / "sub" / "b.jpg").exists()


def test_export_and_options(photo):
    assert (
        main(
            [
                str(photo),
                "-q",
                "--method",
                "fill",
                "--color",
                "#00ff00",
                "--shape",
                "rect",
                "--export",
                "json",
            ]
        )
        == 0
    )
    out = read_image(photo.with_name("portrait_anonymized.jpg")).image
    assert np.abs(out[118, 226].astype(int) - [0, 255, 0]).max() < 10
    assert photo.with_name("portrait_anonymized.json").exists()


def test_video_via_console(tmp_path, face_video):
    proc = run_veil(face_video, "-o", tmp_path / "v.mp4")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "v.mp4").exists()
    assert "30 frames" in proc.stderr


@pytest.mark.parametrize(
    "make, code, text",
    [
        (lambda p: None, 2, "no such file"),
        (lambda p: p.write_bytes(b""), 2, "empty"),
        (lambda p: p.write_bytes(b"not an image"), 2, "not a readable image"),
    ],
)
def test_bad_input_one_line_error(tmp_path, make, code, text):
    path = tmp_path / "input.jpg"
    make(path)
    proc = run_veil(path)
    assert proc.returncode == code
    assert text in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.glob("*anonymized*"))


def test_unreadable_path(tmp_path, photo):
    if os.geteuid() == 0:
        pytest.skip("root reads everything")
    photo.chmod(0)
    assert run_veil(photo).returncode == 2


def test_help_version_and_bad_option():
    proc = run_veil("--help")
    assert proc.returncode == 0
    assert "examples:" in proc.stdout
    assert "veil demo" in proc.stdout
    proc = run_veil("--version")
    assert proc.returncode == 0
    assert proc.stdout.startswith("veil ")
    proc = run_veil("x.jpg", "--method", "smear")
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr


def test_demo(tmp_path):
    proc = run_veil("demo", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "1 face(s) found" in proc.stdout
    assert (tmp_path / "astronaut_anonymized.jpg").exists()


def test_demo_honours_a_config_file(tmp_path):
    (tmp_path / "demo.toml").write_text('output = "filled.png"\nmethod = "fill"\nquiet = true\n')
    proc = run_veil("demo", "--config", "demo.toml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    out = read_image(tmp_path / "filled.png").image
    assert out[118, 226].max() < 10


def test_config_file_is_honoured_and_flags_win(photo):
    config = photo.with_name("veil.toml")
    config.write_text('method = "fill"\ncolor = "#ff0000"\nsuffix = "_cfg"\nquiet = true\n')
    proc = run_veil(photo, "--config", config, "--color", "#00ff00")
    assert proc.returncode == 0, proc.stderr
    out = read_image(photo.with_name("portrait_cfg.jpg")).image
    assert np.abs(out[118, 226].astype(int) - [0, 255, 0]).max() < 10


def test_import_is_light():
    code = (
        "import sys, veil; "
        "print(sorted(m for m in ('cv2', 'onnxruntime', 'av', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True
    ).stdout.strip()
    assert out == "[]"


def test_one_bad_file_among_many_is_reported_and_the_rest_go_on(tmp_path, photo, capsys):
    folder = tmp_path / "mixed"
    folder.mkdir()
    Image.open(photo).save(folder / "a.jpg")
    (folder / "b.jpg").write_bytes(b"broken")
    Image.open(photo).save(folder / "c.png")
    code = main([str(folder), "-o", str(tmp_path / "out"), "-q"])
    err = capsys.readouterr().err
    assert code == 2
    assert "b.jpg: not a readable image" in err
    assert "1 of 3 inputs failed" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.jpg", "c.png"]
