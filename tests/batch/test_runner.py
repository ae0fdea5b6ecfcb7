"""veil batch on a local process pool: mirroring, manifests, journal, failures, kill and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from veil.batch.command import main as batch_main
from veil.batch.journal import settings_hash
from veil.batch.segments import plan_segments
from veil.batch.storage import list_inputs
from veil.cli import main as veil_main
from veil.hide import AnonymizeOptions
from veil.pipeline import JobOptions

from batch_media import (
    audio_packets,
    face_hidden,
    journal_rows,
    make_tree,
    photo_folder,
    small_astronaut,
    video_frames,
    worker_pids,
)
from media import ENV, panning_frames, read_video, write_video


@pytest.fixture()
def tree(tmp_path):
    files = make_tree(tmp_path / "in")
    return tmp_path / "in", files


def test_folder_mirrored_failures_reported_and_summary(tmp_path, tree):
    source, files = tree
    out = tmp_path / "out"
    code = batch_main([str(source), "-o", str(out), "--workers", "2", "-q"])
    assert code == 1  # the broken file failed, everything else went on
    for rel in ("day0/photo0.jpg", "day1/photo1.png", "day0/photo2.jpg"):
        assert (out / rel).is_file()
    assert not (out / "day0" / "broken.jpg").exists()
    video = out / "clips" / "walk.mov"
    assert len(video_frames(video)) == 15
    assert audio_packets(video) > 50
    assert face_hidden(small_astronaut(), cv2.imread(str(out / "day0" / "photo0.jpg")))
    assert face_hidden(small_astronaut(), video_frames(video)[0])
    summary = json.loads((out / "veil-batch-summary.json").read_text())
    assert summary["files"] == 5
    assert summary["processed"] == 4
    assert summary["failed"] == 1
    assert summary["frames"] == 3 + 15
    assert summary["faces"] >= 2 + 15
    failure = summary["failures"][0]
    assert failure["file"].endswith("broken.jpg")
    assert "not a readable image" in failure["error"]
    assert summary["files_per_second"] > 0
    assert summary["frames_per_second"] > 0
    rows = journal_rows(out / "veil-batch.sqlite")
    assert rows["day0/broken.jpg"]["state"] == "failed"
    assert rows["day1/photo1.png"]["state"] == "done"
    assert not [p for p in out.rglob(".veil-partial-*")]


def test_same_bytes_as_the_single_file_command(tmp_path, tree):
    source, files = tree
    out = tmp_path / "out"
    batch_main(
        [
            str(source),
            "-o",
            str(out),
            "--workers",
            "2",
            "--threads",
            "1",
            "-q",
            "--method",
            "pixelate",
        ]
    )
    single = tmp_path / "single.jpg"
    assert (
        veil_main(
            [
                str(files["day0/photo2.jpg"]),
                "-o",
                str(single),
                "--threads",
                "1",
                "-q",
                "--method",
                "pixelate",
            ]
        )
        == 0
    )
    assert single.read_bytes() == (out / "day0" / "photo2.jpg").read_bytes()


def test_rerun_skips_done_retries_failed_and_redoes_changed(tmp_path, tree):
    source, files = tree
    out = tmp_path / "out"
    batch_main([str(source), "-o", str(out), "--workers", "1", "-q"])
    first = journal_rows(out / "veil-batch.sqlite")

    # unchanged: everything done is skipped, the broken file is tried again
    assert batch_main([str(source), "-o", str(out), "--workers", "1", "-q"]) == 1
    second = journal_rows(out / "veil-batch.sqlite")
    for key, row in first.items():
        if row["state"] == "done":
            assert second[key]["updated"] == row["updated"]
            assert second[key]["attempts"] == 1
    assert second["day0/broken.jpg"]["attempts"] == 2
    summary = json.loads((out / "veil-batch-summary.json").read_text())
    assert summary["skipped"] == 4
    assert summary["processed"] == 0
    assert summary["failed"] == 1

    # a fixed input, an edited input and a deleted output are redone; the rest is not
    cv2.imwrite(str(files["day0/broken.jpg"]), small_astronaut())
    cv2.imwrite(str(files["day1/photo1.png"]), small_astronaut()[:, ::-1])
    (out / "day0" / "photo2.jpg").unlink()
    assert batch_main([str(source), "-o", str(out), "--workers", "1", "-q"]) == 0
    third = journal_rows(out / "veil-batch.sqlite")
    redone = {key for key in third if third[key]["updated"] != second[key]["updated"]}
    assert redone == {"day0/broken.jpg", "day1/photo1.png", "day0/photo2.jpg"}
    assert all(row["state"] == "done" for row in third.values())

    # other settings: every file is redone
    before = (out / "day0" / "photo0.jpg").read_bytes()
    assert (
        batch_main([str(source), "-o", str(out), "--workers", "1", "-q", "--method", "fill"]) == 0
    )
    fourth = journal_rows(out / "veil-batch.sqlite")
    assert all(fourth[k]["updated"] != third[k]["updated"] for k in fourth)
    assert (out / "day0" / "photo0.jpg").read_bytes() != before


def test_settings_hash_ignores_how_but_not_what():
    base = JobOptions()
    assert settings_hash(base) == settings_hash(JobOptions(queue_size=2, overwrite=True))
    assert settings_hash(base) != settings_hash(
        JobOptions(anonymize=AnonymizeOptions(method="pixelate"))
    )


def test_manifest_text_and_csv(tmp_path, tree):
    source, files = tree
    (tmp_path / "list.txt").write_text(
        "# two photos\nin/day0/photo0.jpg\n\n" + str(files["day1/photo1.png"]) + "\n"
    )
    (tmp_path / "list.csv").write_text("id,path\n1,in/day0/photo2.jpg\n2,in/clips/walk.mov\n")
    assert (
        batch_main([str(tmp_path / "list.txt"), "-o", str(tmp_path / "a"), "--workers", "1", "-q"])
        == 0
    )
    assert sorted(
        p.relative_to(tmp_path / "a").as_posix() for p in (tmp_path / "a").rglob("photo*")
    ) == ["day0/photo0.jpg", "day1/photo1.png"]
    listed = list_inputs(str(tmp_path / "list.csv"))
    assert [s.key for s in listed.sources] == ["day0/photo2.jpg", "clips/walk.mov"]
    as_url = list_inputs(source.as_uri())
    assert [s.key for s in as_url.sources] == sorted(files)


def test_output_inside_input_is_not_read_back(tmp_path, tree):
    source, files = tree
    files["day0/broken.jpg"].unlink()
    assert batch_main([str(source), "-o", str(source / "anon"), "--workers", "1", "-q"]) == 0
    assert batch_main([str(source), "-o", str(source / "anon"), "--workers", "1", "-q"]) == 0
    summary = json.loads((source / "anon" / "veil-batch-summary.json").read_text())
    assert summary["files"] == 4
    assert summary["skipped"] == 4
    assert not (source / "anon" / "anon").exists()


def test_bad_arguments_are_one_line_errors(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "veil",
            "batch",
            str(tmp_path / "nothing"),
            "-o",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "no such file" in proc.stderr
    assert "Traceback" not in proc.stderr


def one_worker_batch(source: Path, out: Path, *extra: str) -> list[str]:
    """`veil batch` on one local worker, quiet, as a command line for a process of its own."""
    veil = [sys.executable, "-m", "veil", "batch"]
    return [*veil, str(source), "-o", str(out), "-j", "1", "-q", *extra]


def _stop_part_way(command: list[str], journal: Path, done_at_least: int, sig: int) -> int:
    """Start a batch, send `sig` to its process group once enough files are done; its exit code."""
    # A shell starts background jobs with SIGINT ignored, and children inherit that: restore the
    # default.
    proc = subprocess.Popen(
        command,
        env=ENV,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if (
                journal.exists()
                and sum(r["state"] == "done" for r in journal_rows(journal).values())
                >= done_at_least
            ):
                break
            time.sleep(0.02)
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
        return proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_interrupted_and_killed_runs_resume_without_redoing_finished_work(tmp_path):
    source = tmp_path / "in"
    photo = small_astronaut()
    for i in range(14):
        path = source / f"set{i % 3}" / f"img{i:02d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), np.roll(photo, i * 5, axis=1))
    make_tree(source, images=0, video=True, bad=False)
    total = 15
    out = tmp_path / "out"
    journal = tmp_path / "state" / "journal.sqlite"
    command = one_worker_batch(source, out, "--journal", str(journal))

    # Ctrl-C (SIGINT to the whole process group, as a terminal sends it)
    assert _stop_part_way(command, journal, 2, signal.SIGINT) == 130
    first = {k: r for k, r in journal_rows(journal).items() if r["state"] == "done"}
    assert 2 <= len(first) < total
    assert not list(out.rglob(".veil-partial-*"))
    assert json.loads((journal.parent / "journal-summary.json").read_text())["interrupted"] is True

    # SIGKILL: no chance to clean up
    assert _stop_part_way(command, journal, len(first) + 3, signal.SIGKILL) == -signal.SIGKILL
    done_before = {k: r for k, r in journal_rows(journal).items() if r["state"] == "done"}
    assert len(first) + 3 <= len(done_before) < total, "the run should have been killed part-way"
    assert all(done_before[k]["updated"] == r["updated"] for k, r in first.items())
    stamps = {k: (out / k).stat().st_mtime_ns for k in done_before}

    resumed = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    after = journal_rows(journal)
    assert len(after) == total
    assert all(r["state"] == "done" for r in after.values())
    for key, row in done_before.items():
        assert after[key]["updated"] == row["updated"]
        assert after[key]["attempts"] == 1
        assert (out / key).stat().st_mtime_ns == stamps[key]
    summary = json.loads((journal.parent / "journal-summary.json").read_text())
    assert summary["skipped"] == len(done_before)
    assert summary["processed"] == total - len(done_before)
    for i in range(14):
        image = cv2.imread(str(out / f"set{i % 3}" / f"img{i:02d}.jpg"))
        assert image is not None
        assert image.shape == photo.shape
    assert len(video_frames(out / "clips" / "walk.mov")) == 15
    assert not list(out.rglob(".veil-partial-*"))


def test_long_video_split_at_keyframes_and_joined_by_copy(tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    frames = panning_frames(small_astronaut(), 30, step=2)
    video = write_video(source / "talk.mp4", frames, fps=10, gop=5, audio_seconds=3.0)
    segments = plan_segments(video, tmp_path / "out" / "talk.mp4", 1.0, 0.5)
    assert [(s.start, s.end, s.context_start, s.context_end) for s in segments] == [
        (None, 1.0, None, 1.5),
        (1.0, 2.0, 0.5, 2.5),
        (2.0, None, 1.5, None),
    ]

    assert (
        batch_main(
            [
                str(source),
                "-o",
                str(tmp_path / "out"),
                "--workers",
                "2",
                "-q",
                "--segment-seconds",
                "1",
                "--segment-overlap",
                "0.5",
            ]
        )
        == 0
    )
    assert batch_main([str(source), "-o", str(tmp_path / "whole"), "--workers", "1", "-q"]) == 0
    joined, whole = tmp_path / "out" / "talk.mp4", tmp_path / "whole" / "talk.mp4"
    original, t_in = read_video(video)
    after, t_out = read_video(joined)
    reference, _ = read_video(whole)
    assert len(after) == 30
    assert np.allclose(t_in, t_out)
    for i, (frame, ref) in enumerate(zip(after, reference)):
        assert face_hidden(original[i], frame, shift=2 * i), f"frame {i}"
        assert np.abs(frame.astype(int) - ref.astype(int)).mean() < 4  # encoder noise only
    assert audio_packets(joined) == audio_packets(video) > 100
    with av.open(str(joined)) as container:
        stream = container.streams.video[0]
        keys = [float(p.pts * p.time_base) for p in container.demux(stream) if p.is_keyframe]
        assert keys == [
            0.0,
            1.0,
            2.0,
        ]  # each segment starts where it was cut; nothing re-encoded at the joins
        assert not container.metadata.keys() & {"title", "artist"}
    rows = journal_rows(tmp_path / "out" / "veil-batch.sqlite")
    assert rows["talk.mp4"]["frames"] == 30
    assert rows["talk.mp4"]["settings"].endswith(":segments=1/0.5")
    assert not list((tmp_path / "out").glob(".veil-*"))


def test_two_inputs_with_one_output_name(tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    frames = panning_frames(small_astronaut(), 5)
    write_video(source / "clip.avi", frames, codec="mpeg4")
    write_video(source / "clip.mp4", frames)
    assert batch_main([str(source), "-o", str(tmp_path / "out"), "--workers", "1", "-q"]) == 1
    summary = json.loads((tmp_path / "out" / "veil-batch-summary.json").read_text())
    assert summary["processed"] == 1
    assert summary["failed"] == 1
    assert "already the output of" in summary["failures"][0]["error"]
    assert len(video_frames(tmp_path / "out" / "clip.mp4")) == 5


def test_killed_worker_is_replaced_and_the_batch_goes_on(tmp_path):
    source = photo_folder(tmp_path / "in", 8)
    photo = small_astronaut()
    out = tmp_path / "out"
    command = one_worker_batch(source, out)
    proc = subprocess.Popen(
        command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    journal = out / "veil-batch.sqlite"
    deadline = time.monotonic() + 240
    killed = None
    while time.monotonic() < deadline and proc.poll() is None and killed is None:
        if (
            journal.exists()
            and sum(r["state"] == "done" for r in journal_rows(journal).values()) >= 2
        ):
            workers = worker_pids(proc.pid)
            if workers:
                os.kill(workers[0], signal.SIGKILL)
                killed = workers[0]
        time.sleep(0.02)
    _, stderr = proc.communicate(timeout=240)
    assert killed is not None, "the worker should have been killed part-way"
    assert proc.returncode == 0, stderr
    rows = journal_rows(journal)
    assert len(rows) == 8
    assert all(r["state"] == "done" for r in rows.values())
    for i in range(8):
        assert cv2.imread(str(out / f"img{i}.png")).shape == photo.shape
    assert not list(out.glob(".veil-*"))


def test_manifest_never_overwrites_its_inputs(tmp_path, tree):
    source, files = tree
    before = files["day0/photo0.jpg"].read_bytes()
    (tmp_path / "self.txt").write_text(f"{files['day0/photo0.jpg']}\n")
    assert (
        batch_main([str(tmp_path / "self.txt"), "-o", str(files["day0/photo0.jpg"].parent), "-q"])
        == 1
    )
    summary = json.loads((files["day0/photo0.jpg"].parent / "veil-batch-summary.json").read_text())
    assert "refusing to overwrite the input" in summary["failures"][0]["error"]
    assert files["day0/photo0.jpg"].read_bytes() == before


def test_a_second_run_on_the_same_output_stops_in_one_line(tmp_path):
    source = photo_folder(tmp_path / "in", 12)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "veil", "batch", str(source), "-o", str(out), "-j", "1", "-q"]
    first = subprocess.Popen(command, env=ENV, stderr=subprocess.PIPE, text=True)
    journal = out / "veil-batch.sqlite"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and first.poll() is None and not journal.exists():
        time.sleep(0.02)  # the journal is made once the first run holds the output
    second = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=120)
    running = first.poll() is None
    _, first_err = first.communicate(timeout=240)
    assert running, "the first run should still have been working"
    assert second.returncode == 3, second.stderr
    assert second.stderr.strip() == f"veil: error: another veil batch is writing to {out}"
    assert first.returncode == 0, first_err
    rows = journal_rows(journal)
    assert all(r["state"] == "done" for r in rows.values())
    assert len(rows) == 12


def test_a_missing_manifest_entry_is_no_such_file(tmp_path):
    source = photo_folder(tmp_path / "in", 1)
    (source / "list.txt").write_text("img0.png\ngone.png\n")
    out = tmp_path / "out"
    assert batch_main([str(source / "list.txt"), "-o", str(out), "-j", "1", "-q"]) == 1
    summary = json.loads((out / "veil-batch-summary.json").read_text())
    assert summary["processed"] == 1
    assert summary["failures"] == [
        {"file": str(source / "gone.png"), "error": f"{source / 'gone.png'}: no such file"}
    ]
