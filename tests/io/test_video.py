"""Videos: timing kept across containers, damaged or changing inputs reported (never silently
shortened or cropped), the output as large as the input, audio copied or re-encoded in place,
and only the anonymized picture and the audio written."""

from __future__ import annotations

import logging
import shutil
import subprocess
from fractions import Fraction

import av
import numpy as np
import pytest

from veil.detectors import DetectorOptions
from veil.errors import InputError
from veil.io.video import VideoSource
from veil.pipeline import JobOptions, Pipeline

from media import mean_abs_diff, panning_frames, read_video, write_video


@pytest.fixture(scope="module")
def pipeline():
    return Pipeline(JobOptions(detector=DetectorOptions(max_size=256)))


def small(astronaut, n=30):
    return panning_frames(astronaut[:256, :256], n, step=2)


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_ts_to_other_container_keeps_times(tmp_path, astronaut, pipeline, suffix):
    """Times survive a muxer that picks its own time base (MPEG-TS 1/90000 -> Matroska 1/1000)."""
    source = write_video(tmp_path / "in.ts", small(astronaut, 60), fps=25)
    _, times_in = read_video(source)
    result = pipeline.run([source], tmp_path / f"out{suffix}")[0]
    _, times_out = read_video(result.output)
    assert len(times_out) == len(times_in)
    assert np.allclose(
        np.array(times_out) - times_out[0], np.array(times_in) - times_in[0], atol=0.002
    )


def remux(src, dst, **options):
    """Packets copied into another container (e.g. movflags=faststart: the index comes first)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", options=options) as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    return dst


def cut(path, fraction):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


@pytest.mark.parametrize("kind", ["mkv", "faststart mp4"])
@pytest.mark.parametrize("fraction", [0.5, 0.9])
def test_a_cut_video_is_an_error_not_a_shorter_output(
    tmp_path, astronaut, pipeline, kind, fraction
):
    clip = write_video(tmp_path / "whole.mkv", small(astronaut), fps=15)
    if kind != "mkv":
        clip = remux(clip, tmp_path / "whole.mp4", movflags="faststart")
    source = cut(clip, fraction)
    out = tmp_path / f"out{source.suffix}"
    with pytest.raises(InputError, match="damaged or cut video.* but only \\d+ frames"):
        pipeline.process(source, out)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(("out", ".veil"))]


def test_whole_videos_are_not_taken_for_cut_ones(tmp_path, astronaut, face_video):
    """Audio longer than the video, and a video starting late, end where the file says."""
    with VideoSource(face_video) as src:
        frames = sum(1 for _ in src.frames())
    assert frames == 30


def resizing_video(path, first, second, fps=10):
    """One H.264 stream in MPEG-TS whose picture size changes between `first` and `second`."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = first[0].shape[1], first[0].shape[0]
        stream.pix_fmt = "yuv420p"
        pts = 0
        for frames in (first, second):
            encoder = av.CodecContext.create("libx264", "w")
            encoder.width, encoder.height = frames[0].shape[1], frames[0].shape[0]
            encoder.pix_fmt, encoder.time_base = "yuv420p", Fraction(1, fps)
            encoder.options = {"preset": "ultrafast", "crf": "12"}
            for image in [*frames, None]:
                vf = None
                if image is not None:
                    vf = av.VideoFrame.from_ndarray(image, format="bgr24")
                    vf.pts, vf.time_base = pts, Fraction(1, fps)
                    pts += 1
                for packet in encoder.encode(vf):
                    packet.stream = stream
                    container.mux(packet)
    return path


def test_a_size_change_is_letterboxed_never_cropped(tmp_path, astronaut, pipeline, caplog):
    first = small(astronaut, 10)
    wide = np.zeros((240, 320, 3), np.uint8)
    wide[:] = 90
    wide[-40:, -40:] = 255  # a mark in the corner a crop to 256x256 would cut off
    source = resizing_video(tmp_path / "resize.ts", first, [wide] * 10)
    result = pipeline.process(source, tmp_path / "out.mp4")
    frames, _ = read_video(result.output)
    assert len(frames) == 20
    assert {f.shape for f in frames} == {(256, 256, 3)}
    last = frames[-1].astype(int)
    assert last[:28].mean() < 8  # black band above: scaled 320x240 -> 256x192, centred
    assert last[200:220, 230:250].mean() > 200  # the corner mark, scaled, still there
    assert "picture size changes to 320x240" in caplog.text


def video_with_audio(path, frames, codec, audio_start: float, rate=16000, fps=10, video_start=0.0):
    """A clip whose audio (a 440 Hz tone in `codec`) starts `audio_start` seconds in."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        audio = container.add_stream(codec, rate=rate)
        audio.layout = "mono"
        for i, image in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(image, format="bgr24")
            vf.pts, vf.time_base = round((video_start + i / fps) * fps), Fraction(1, fps)
            for packet in video.encode(vf):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        n, chunk = int(rate * len(frames) / fps), 1024
        for start in range(0, n - chunk, chunk):
            t = (np.arange(chunk) + start) / rate
            samples = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)[None]
            af = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
            af.sample_rate = rate
            af.pts, af.time_base = start + round(audio_start * rate), Fraction(1, rate)
            for packet in audio.encode(af):
                container.mux(packet)
        for packet in audio.encode(None):
            container.mux(packet)
    return path


def sound_starts(path) -> float:
    """When the first audible sample plays, relative to the first video frame (seconds)."""
    with av.open(str(path)) as container:
        video = next(container.decode(container.streams.video[0])).time
        container.seek(0)
        for frame in container.decode(container.streams.audio[0]):
            samples = np.abs(frame.to_ndarray().astype(np.float32)).max(axis=0)
            loud = np.flatnonzero(samples > 0.02 * (32767 if samples.max() > 1.5 else 1))
            if len(loud):
                return frame.time + loud[0] / frame.sample_rate - video
    raise AssertionError("no sound")


def test_re_encoded_audio_keeps_its_start_time(tmp_path, astronaut, pipeline):
    source = video_with_audio(tmp_path / "late.mkv", small(astronaut, 40), "pcm_s16le", 1.5)
    result = pipeline.process(source, tmp_path / "out.mp4")  # MP4 cannot carry PCM: AAC
    with av.open(str(result.output)) as container:
        assert container.streams.audio[0].codec_context.name == "aac"
    assert sound_starts(source) == pytest.approx(1.5, abs=0.01)
    assert sound_starts(result.output) == pytest.approx(1.5, abs=0.02)


def test_mp3_is_copied_into_mp4(tmp_path, astronaut, pipeline):
    source = video_with_audio(tmp_path / "talk.mkv", small(astronaut, 20), "libmp3lame", 0.0)
    result = pipeline.process(source, tmp_path / "out.mp4")
    with av.open(str(source)) as a, av.open(str(result.output)) as b:
        packets_in = [bytes(p) for p in a.demux(a.streams.audio[0]) if p.size]
        packets_out = [bytes(p) for p in b.demux(b.streams.audio[0]) if p.size]
        assert b.streams.audio[0].codec_context.codec.canonical_name == "mp3"
    assert packets_out == packets_in


@pytest.mark.parametrize("size", [(509, 511), (510, 511), (509, 510)])
def test_odd_sizes_are_kept_exactly(tmp_path, astronaut, pipeline, size):
    width, height = size
    frames = [np.ascontiguousarray(astronaut[:height, :width])] * 5
    source = write_video(tmp_path / "odd.mkv", frames, fps=10, codec="ffv1")
    result = pipeline.process(source, tmp_path / "out.mp4")
    after, _ = read_video(result.output)
    assert after[0].shape == (height, width, 3)
    assert mean_abs_diff(after[0][400:], frames[0][400:]) < 4


def ffmpeg(*args):
    if shutil.which("ffmpeg") is None:
        pytest.skip("needs the ffmpeg program to build the input")
    subprocess.run(["ffmpeg", "-v", "error", "-y", *map(str, args)], check=True)


def test_only_the_anonymized_picture_and_the_audio_are_written(tmp_path, face_video, pipeline):
    """Tags, chapters, subtitles, data streams (GPS tracks), attachments and cover art are
    dropped; a second video stream is named in a warning and left out."""
    subs = tmp_path / "subs.srt"
    subs.write_text("1\n00:00:00,000 --> 00:00:01,500\nJane Doe speaking\n")
    chapters = tmp_path / "chapters.txt"
    chapters.write_text(
        ";FFMETADATA1\ntitle=Jane Doe interview\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=1000\n"
        "title=Jane Doe arrives\n"
    )
    cover = tmp_path / "cover.png"
    ffmpeg("-f", "lavfi", "-i", "color=red:s=64x64", "-frames:v", "1", cover)
    source = tmp_path / "tagged.mkv"
    ffmpeg(
        *("-i", face_video, "-i", subs, "-i", chapters, "-i", face_video),
        *("-map", "0:v", "-map", "0:a", "-map", "1", "-map", "3:v", "-map_metadata", "2"),
        *("-map_chapters", "2", "-c", "copy", "-c:s", "srt"),
        *("-metadata:s:v:0", "title=Jane Doe camera", "-metadata:s:a:0", "title=Jane Doe mic"),
        *("-attach", cover, "-metadata:s:t", "mimetype=image/png"),
        source,
    )
    with av.open(str(source)) as container:
        assert len(container.streams.video) == 3  # the attached picture shows as a video stream
        assert container.streams.subtitles
        assert container.chapters()
    result = pipeline.process(source, tmp_path / "out.mkv")
    with av.open(str(result.output)) as container:
        kinds = [s.type for s in container.streams]
        tags = [container.metadata, *(s.metadata for s in container.streams)]
        assert not container.chapters()
    assert kinds == ["video", "audio"]
    assert not [t for t in tags if any("Jane Doe" in v for v in t.values())]
    assert b"Jane Doe" not in result.output.read_bytes()


def test_a_data_stream_and_cover_art_are_dropped(tmp_path, face_video, pipeline, caplog):
    cover = tmp_path / "cover.jpg"
    ffmpeg("-f", "lavfi", "-i", "color=red:s=64x64", "-frames:v", "1", cover)
    source = tmp_path / "phone.mov"
    ffmpeg(
        *("-i", face_video, "-i", cover, "-map", "0:v", "-map", "0:a", "-map", "1"),
        *("-c", "copy", "-disposition:v:1", "attached_pic", "-timecode", "01:00:00:00"),
        source,
    )
    with av.open(str(source)) as container:
        assert container.streams.data  # the timecode track
    result = pipeline.process(source, tmp_path / "out.mov")
    with av.open(str(result.output)) as container:
        kinds = [s.type for s in container.streams]
    assert kinds == ["video", "audio"]
    assert "video streams" not in caplog.text  # cover art is not a second video


def test_every_audio_stream_is_kept(tmp_path, face_video, pipeline):
    source = tmp_path / "two_languages.mkv"
    ffmpeg("-i", face_video, "-map", "0:v", "-map", "0:a", "-map", "0:a", "-c", "copy", source)
    result = pipeline.process(source, tmp_path / "out.mp4")
    with av.open(str(result.output)) as container:
        assert len(container.streams.audio) == 2


def test_extra_video_streams_are_named_in_a_warning(tmp_path, face_video, pipeline, caplog):
    source = tmp_path / "two_angles.mkv"
    ffmpeg("-i", face_video, "-map", "0:v", "-map", "0:v", "-c", "copy", source)
    with caplog.at_level(logging.WARNING, logger="veil"):
        result = pipeline.process(source, tmp_path / "out.mkv")
    with av.open(str(result.output)) as container:
        assert len(container.streams.video) == 1
    assert "has 2 video streams" in caplog.text
