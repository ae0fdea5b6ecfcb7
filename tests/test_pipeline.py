import av
import numpy as np
import pytest

from veil.detections import Detections
from veil.detectors import Detector
from veil.errors import InputError, VeilError
from veil.io.export import DataExport
from veil.pipeline import Cancelled, JobOptions, Pipeline

from media import astronaut_face_hidden, mean_abs_diff, read_video, write_video


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
