import threading

import av
import cv2
import numpy as np
import pytest

import veil
import veil.pipeline as pipeline_module
from veil.detections import Detections
from veil.detectors import Detector, DetectorOptions
from veil.detectors.scan import KeyframeScanner
from veil.errors import InputError, ProcessingError, VeilError
from veil.frame import Frame
from veil.io.export import DataExport
from veil.pipeline import (
    Anonymized,
    BatchDetection,
    Cancelled,
    DeadlineDetection,
    FrameLoop,
    JobOptions,
    Pipeline,
)
from veil.tracking import TrackingOptions
from veil.web.live import LiveSession, encode_jpeg

from media import (
    astronaut_face_hidden,
    live_loop,
    mean_abs_diff,
    panning_frames,
    read_video,
    write_video,
)


@pytest.fixture(scope="module")
def pipeline():
    return Pipeline()


def face_changed(before, after):
    x1, y1, x2, y2 = 200, 80, 250, 160
    return mean_abs_diff(before[y1:y2, x1:x2], after[y1:y2, x1:x2])


def test_video_end_to_end(tmp_path, face_video, pipeline):
    out = tmp_path / "out.mp4"
    result = pipeline.process(face_video, out)
    assert result.frames == 30
    assert result.boxes >= 30
    assert out.exists()
    before, t_in = read_video(face_video)
    after, t_out = read_video(out)
    assert len(after) == len(before)
    assert np.allclose(t_in, t_out)
    for i, (b, a) in enumerate(zip(before, after)):
        assert astronaut_face_hidden(b, a, shift=3 * i, background=4), (
            f"frame {i}: face kept or background changed"
        )
    with av.open(str(out)) as c:
        assert not {"title", "location", "artist"} & set(c.metadata)
        audio = c.streams.audio[0]
        assert audio.codec_context.name == "aac"
        assert sum(1 for _ in c.demux(audio)) > 80  # ~2 s of 1024-sample AAC packets
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".veil")] == []


def test_keep_metadata(tmp_path, face_video):
    out = tmp_path / "meta.mp4"
    Pipeline(JobOptions(keep_metadata=True)).process(face_video, out)
    with av.open(str(out)) as c:
        assert c.metadata.get("title") == "interview"


def test_no_audio_option(tmp_path, face_video):
    from veil.io.video import EncoderOptions

    out = tmp_path / "mute.mp4"
    Pipeline(JobOptions(encoder=EncoderOptions(keep_audio=False))).process(face_video, out)
    with av.open(str(out)) as c:
        assert not c.streams.audio


def test_video_without_audio_and_odd_size(tmp_path, astronaut, pipeline):
    frames = [np.ascontiguousarray(astronaut[:511, :509])] * 5
    src = write_video(tmp_path / "odd.mkv", frames, fps=10, codec="ffv1")
    result = pipeline.process(src, tmp_path / "odd_out.mkv")
    after, _ = read_video(result.output)
    assert len(after) == 5
    assert face_changed(frames[0], after[0][:511, :509]) > 12


def test_a_json_export_renders_back_the_same_video_without_a_detector(tmp_path, face_video):
    """--detections: the exported boxes, final after tracking, hidden again as they are."""
    first = Pipeline(JobOptions(export_format="json")).process(face_video, tmp_path / "a.mp4")
    again = Pipeline(JobOptions(detections=str(first.export)))
    second = again.process(face_video, tmp_path / "b.mp4")
    assert again._detector is None  # nothing was detected
    assert [len(d) for d in second.per_frame] == [len(d) for d in first.per_frame]
    assert second.boxes > 0
    for a, b in zip(read_video(first.output)[0], read_video(second.output)[0]):
        assert mean_abs_diff(a, b) < 1.0


@pytest.mark.parametrize("fmt", ["csv", "tsv", "txt", "json"])
def test_export_formats(tmp_path, face_video, fmt):
    result = Pipeline(JobOptions(export_format=fmt)).process(face_video, tmp_path / "e.mp4")
    text = result.export.read_text()
    assert result.export.suffix == f".{fmt}"
    if fmt == "json":
        import json

        rows = json.loads(text)
        assert rows[0]["frame"] == 0
        assert {"time_ms", "x1", "y2", "score", "track_id"} <= set(rows[0])
        assert rows[-1]["time_ms"] == pytest.approx(29 / 15 * 1000, abs=1)
    else:
        lines = text.strip().splitlines()
        assert lines[0].startswith("time_ms")
        assert len(lines) >= 31


def test_truncated_video_fails_cleanly(tmp_path, face_video, pipeline):
    data = face_video.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    out = tmp_path / "never.mp4"
    with pytest.raises(InputError):
        pipeline.process(cut, out)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".veil")]


def test_not_a_video(tmp_path, pipeline):
    bogus = tmp_path / "movie.mp4"
    bogus.write_bytes(b"\x00" * 5000)
    with pytest.raises(InputError, match="not a readable video"):
        pipeline.process(bogus, tmp_path / "x.mp4")


class Exploding(Detector):
    def __init__(self, after):
        self.calls, self.after = 0, after

    def detect(self, frames):
        self.calls += 1
        if self.calls > self.after:
            raise RuntimeError("onnx blew up")
        return [Detections.empty() for _ in frames]


def test_detector_failure_writes_nothing(tmp_path, face_video):
    out = tmp_path / "fail.mp4"
    with pytest.raises(VeilError, match="detection failed"):
        Pipeline(detector=Exploding(after=2)).process(face_video, out)
    assert list(tmp_path.iterdir()) == [face_video]


def test_the_detector_loads_on_its_own_thread_while_the_input_is_read(tmp_path, astronaut):
    photo = tmp_path / "a.png"
    cv2.imwrite(str(photo), astronaut)
    pipe = Pipeline()
    loaded_on = []
    load = pipe._load
    pipe._load = lambda: (loaded_on.append(threading.current_thread().name), load())[1]
    result = pipe.process(photo, tmp_path / "out.png")
    assert loaded_on and loaded_on[0].startswith("veil-load")
    assert result.boxes >= 1 and astronaut_face_hidden(astronaut, cv2.imread(str(result.output)))
    assert pipe.detector is pipe.detector  # loaded once, kept for the next input
    pipe.process(photo, tmp_path / "again.png")
    assert len(loaded_on) == 1


def test_a_video_s_models_are_asked_for_once_the_detector_loads_not_with_its_first_batch(
    tmp_path, astronaut, monkeypatch
):
    """The keyframe scan is told the frame size once the detector has loaded, before any
    batch reaches it, so the models for that size load while the first frames decode."""
    video = write_video(tmp_path / "hd.mp4", [cv2.resize(astronaut, (1280, 720))] * 10)
    told, batches = [], []
    expect, detect = KeyframeScanner.expect, KeyframeScanner.detect

    def spy_expect(self, height, width):
        told.append(((height, width), threading.current_thread().name, len(batches)))
        expect(self, height, width)

    def spy_detect(self, frames):
        batches.append(len(frames))
        return detect(self, frames)

    monkeypatch.setattr(KeyframeScanner, "expect", spy_expect)
    monkeypatch.setattr(KeyframeScanner, "detect", spy_detect)
    result = Pipeline().process(video, tmp_path / "out.mp4")
    assert result.frames == 10 and batches == [8, 2]
    size, thread, batches_before = told[0]
    assert (size, batches_before) == ((720, 1280), 0)
    # The loading thread, or the caller's when the detector had loaded already (the detector
    # is shared per settings): not the detection thread, with the first batch.
    assert not thread.startswith("veil-detect")


def test_a_video_is_scanned_knowing_the_user_s_threshold(tmp_path, face_video, monkeypatch):
    """The detector runs at the tracker's lower threshold; the scan is told the user's."""
    seen = []
    plan = pipeline_module.detector_plan
    monkeypatch.setattr(
        pipeline_module,
        "detector_plan",
        lambda detector, strong=None: (seen.append(strong), plan(detector, strong))[1],
    )
    options = JobOptions(detector=DetectorOptions(threshold=0.35))
    Pipeline(options).process(face_video, tmp_path / "out.mp4")
    assert seen == [0.35]


def test_frames_that_take_midway_boxes_are_never_converted_for_the_detector(
    tmp_path, astronaut, monkeypatch
):
    """A video frame keeps its decoded planes; its BGR copy is made only when the keyframe
    scan reads it, and a frame between two that agree is not read (detectors/scan.py)."""
    video = write_video(tmp_path / "still.mp4", [cv2.resize(astronaut, (1280, 720))] * 16)
    converted = []
    image = Frame.image

    def spy(frame):
        if frame._image is None:
            converted.append(frame.index)
        return image.fget(frame)

    monkeypatch.setattr(Frame, "image", property(spy, image.fset))
    result = Pipeline().process(video, tmp_path / "out.mp4")
    assert result.frames == 16 and result.boxes >= 16
    # Keyframes 0, 7 and 15; scanned 2, 4, 6, 9, 11 and 13. The others take midway boxes,
    # frame 8 too, which opens its batch.
    assert sorted(converted) == [0, 2, 4, 6, 7, 9, 11, 13, 15]


def test_a_detector_that_cannot_load_fails_the_job_in_the_caller(tmp_path, face_video):
    options = JobOptions(detector=DetectorOptions(name=f"onnx:{tmp_path / 'missing.onnx'}"))
    with pytest.raises(VeilError, match="model file not found"):
        Pipeline(options).process(face_video, tmp_path / "out.mp4")
    assert list(tmp_path.iterdir()) == [face_video]


def test_cancel_removes_partial_output(tmp_path, face_video):
    pipe = Pipeline()
    pipe.progress = lambda name, done, total: pipe.cancel.set() if done == 3 else None
    with pytest.raises(Cancelled):
        pipe.process(face_video, tmp_path / "c.mp4")
    assert list(tmp_path.iterdir()) == [face_video]


def test_image_in_array_out(pipeline, astronaut):
    out, dets = pipeline.anonymize_image(astronaut)
    assert len(dets) == 1
    assert face_changed(astronaut, out) > 12
    assert np.array_equal(out[400:], astronaut[400:])


def test_greyscale_and_bgra_arrays_in_same_layout_out(pipeline, astronaut):
    grey = cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY)
    out, dets = pipeline.anonymize_image(grey)
    assert out.shape == grey.shape
    assert len(dets) == 1
    bgra = np.concatenate([astronaut, np.full((512, 512, 1), 9, np.uint8)], axis=2)
    out, dets = pipeline.anonymize_image(bgra)
    assert out.shape == bgra.shape
    assert (out[:, :, 3] == 9).all()
    assert face_changed(astronaut, out[:, :, :3]) > 12


def test_export_rejects_unknown_format(tmp_path):
    with pytest.raises(VeilError, match="unknown export format"):
        DataExport(tmp_path / "x.xml")


def test_rotated_phone_video_is_processed_upright(tmp_path, astronaut, pipeline):
    """A phone stores sideways pixels plus a display rotation; veil detects and writes upright."""
    import subprocess

    import imageio_ffmpeg

    upright = np.ascontiguousarray(astronaut[:, 64:448])  # 512 x 384, portrait
    sideways = [np.ascontiguousarray(np.rot90(upright, -1))] * 6  # stored 384 x 512
    raw = write_video(tmp_path / "raw.mp4", sideways, fps=10, audio_seconds=0.6)
    rotated = tmp_path / "phone.mp4"
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-y",
            "-loglevel",
            "error",
            "-display_rotation",
            "90",
            "-i",
            str(raw),
            "-c",
            "copy",
            str(rotated),
        ],
        check=True,
    )
    result = pipeline.process(rotated, tmp_path / "out.mp4")
    assert all(len(d) == 1 for d in result.per_frame)
    frames, _ = read_video(result.output)
    assert frames[0].shape == (512, 384, 3)
    assert mean_abs_diff(frames[0][420:], upright[420:]) < 4
    assert mean_abs_diff(frames[0][80:160, 136:186], upright[80:160, 136:186]) > 12
    with av.open(str(result.output)) as c:
        assert c.streams.audio


# -- the one frame loop ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def plain():
    """Full resolution on every frame and the online tracker: the keyframe scan serves files
    only and look-ahead needs a file, so with these the strategy is all that differs."""
    return Pipeline(
        JobOptions(detector=DetectorOptions(full_every=1), tracking=TrackingOptions(mode="online"))
    )


def numbered(images):
    return [Frame(i, i / 15, image.copy()) for i, image in enumerate(images)]


def whole_picture_hidden(original, image) -> bool:
    """Face and background alike changed strongly, and no detail is left anywhere."""
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return (
        face_changed(original, image) > 12
        and mean_abs_diff(original[380:], image[380:]) > 12
        and cv2.Laplacian(gray, cv2.CV_64F).var() < 5
    )


def test_file_and_live_strategies_agree_when_nothing_is_late(plain, astronaut):
    images = panning_frames(astronaut, 6)
    files = list(plain.iter_anonymized(iter(numbered(images)), 15.0))
    live = live_loop(plain, numbered(images), 15.0)
    assert [frame.index for frame, _ in files] == [out.index for out in live]
    assert not any(out.hidden_whole for out in live)
    assert all(len(out.detections) == 1 for out in live)
    for (frame, dets), out in zip(files, live):
        assert dets == out.detections, f"frame {frame.index}: other detections"
        assert np.array_equal(frame.image, out.image), f"frame {frame.index}: other pixels"


def test_a_late_frame_is_hidden_whole(plain, astronaut):
    detection = DeadlineDetection(plain, max_latency=0.0)  # no detector is that fast
    loop = FrameLoop(plain, detection, fps=15.0)
    try:
        out = [item for frame in numbered([astronaut] * 3) for item in loop.push(frame)]
    finally:
        detection.close()
    assert [item.index for item in out] == [0, 1, 2]
    assert all(item.hidden_whole for item in out)
    assert loop.misses["late"] == 3
    for item in out:
        assert whole_picture_hidden(astronaut, item.image), f"frame {item.index}"
    assert len(plain.detect([out[0].image])[0]) == 0


def test_late_frames_can_be_dropped(plain, astronaut):
    out = live_loop(plain, numbered([astronaut] * 2), 15.0, max_latency=0.0, on_miss="drop")
    assert out == []


class Gated:
    """The real detector, held back until the test opens the gate (a detector busy elsewhere)."""

    def __init__(self, inner, gate):
        self.inner, self.gate = inner, gate

    def detect(self, frames):
        self.gate.wait(timeout=60)
        return self.inner.detect(frames)


def test_a_late_result_feeds_the_filter_without_releasing_its_frame_again(plain, astronaut):
    gate = threading.Event()
    slow = Pipeline(plain.options, detector=Gated(plain.detector, gate))
    detection = DeadlineDetection(slow, max_latency=0.05)
    loop = FrameLoop(slow, detection, fps=15.0)
    frames = numbered([astronaut] * 2)
    try:
        first = loop.push(frames[0])
        gate.set()
        detection.max_latency = None  # the next frame may wait for the worker
        second = loop.push(frames[1])
    finally:
        detection.close()
    assert [(item.index, item.hidden_whole) for item in first] == [(0, True)]
    assert [(item.index, item.hidden_whole) for item in second] == [(1, False)]
    assert face_changed(astronaut, second[0].image) > 12


def test_a_failing_detector_hides_live_frames_whole(astronaut):
    messages = []
    failing = Pipeline(detector=Exploding(after=0))
    detection = DeadlineDetection(failing, max_latency=None)
    loop = FrameLoop(failing, detection, fps=15.0, log=messages.append)
    try:
        out = [item for frame in numbered([astronaut] * 2) for item in loop.push(frame)]
    finally:
        detection.close()
    assert [(item.index, item.hidden_whole) for item in out] == [(0, True), (1, True)]
    assert whole_picture_hidden(astronaut, out[0].image)
    assert loop.misses["failed"] == 2
    assert len(messages) == 1
    assert "onnx blew up" in messages[0]


def test_a_failing_detector_stops_a_file(astronaut):
    failing = Pipeline(detector=Exploding(after=0))
    loop = FrameLoop(failing, BatchDetection(failing), fps=15.0)
    with pytest.raises(ProcessingError, match="onnx blew up"):
        loop.push(Frame(0, 0.0, astronaut.copy()))


def test_web_camera_and_python_live_run_the_same_loop(tmp_path, astronaut, pipeline):
    """The same captured frame comes out of `veil.live()`, the web camera and the loop itself
    pixel for pixel."""
    video = write_video(tmp_path / "camera.mp4", [astronaut] * 3, fps=25)
    captured = read_video(video)[0][0]
    [from_python] = list(veil.live(str(video), max_latency=30.0, max_frames=1))
    [from_loop] = live_loop(pipeline, [Frame(0, 0.0, captured.copy())], 25.0)
    from_web = LiveSession(pipeline).process(cv2.imencode(".png", captured)[1].tobytes())
    assert isinstance(from_python, Anonymized)
    assert not from_python.hidden_whole
    assert np.array_equal(from_python.image, from_loop.image)
    assert from_python.detections == from_loop.detections
    assert from_web == encode_jpeg(from_loop.image)
    assert astronaut_face_hidden(astronaut, from_loop.image, background=6)
