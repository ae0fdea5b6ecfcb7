"""Voices hidden in a video's audio: a real speech recording (espeak-ng) muxed with a video,
then pitched, muted or bleeped; its length, its start, its sync and the stripped metadata kept."""

from __future__ import annotations

import shutil
import subprocess

import av
import cv2
import numpy as np
import pytest

from veil.detectors import DetectorOptions
from veil.errors import OptionError
from veil.io.audio import BLEEP_HZ, PITCH_SEMITONES, VoiceFilter, VoiceOptions, parse_segments
from veil.io.video import EncoderOptions
from veil.pipeline import JobOptions, Pipeline

from media import panning_frames, run_veil, sound_starts, video_with_audio, write_video

FPS = 10
RATE = 16000  # what the checks below analyse at
SENTENCE = "My name is Jane Doe. I live at twelve Mill Road, and I saw everything that night."


def pipeline(voice: str, segments=None) -> Pipeline:
    return Pipeline(
        JobOptions(
            detector=DetectorOptions(max_size=256),
            encoder=EncoderOptions(voice=VoiceOptions(voice=voice, voice_segments=segments)),
        )
    )


@pytest.fixture(scope="module")
def speech_video(tmp_path_factory, astronaut):
    """A few seconds of the astronaut with a man's voice speaking (espeak-ng) in AAC, and
    identifying tags in the container and on the audio stream."""
    for program in ("espeak-ng", "ffmpeg"):
        if shutil.which(program) is None:
            pytest.skip(f"needs the {program} program to make the recording")
    folder = tmp_path_factory.mktemp("speech")
    wav = folder / "speech.wav"
    subprocess.run(["espeak-ng", "-v", "en", "-w", str(wav), SENTENCE], check=True)
    seconds = av.open(str(wav)).duration / av.time_base
    frames = panning_frames(astronaut[:256, :256], int(seconds * FPS) + 1, step=1)
    picture = write_video(folder / "picture.mp4", frames, fps=FPS)
    source = folder / "interview.mp4"
    subprocess.run(
        [
            *("ffmpeg", "-v", "error", "-y", "-i", picture, "-i", wav),
            *("-c:v", "copy", "-c:a", "aac", "-b:a", "128k"),
            *("-metadata", "artist=Jane Doe", "-metadata:s:a:0", "title=Jane Doe mic"),
            source,
        ],
        check=True,
    )
    return source


@pytest.fixture(scope="module")
def treated(speech_video, tmp_path_factory):
    """voice -> the output of the speech video with that voice treatment (made once)."""
    folder = tmp_path_factory.mktemp("treated")
    made = {}

    def output(voice: str):
        if voice not in made:
            made[voice] = pipeline(voice).process(speech_video, folder / f"{voice}.mp4").output
        return made[voice]

    return output


def samples(path) -> np.ndarray:
    """The first audio stream, mono float at RATE."""
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
        chunks = [
            out.to_ndarray().reshape(-1)
            for frame in container.decode(container.streams.audio[0])
            for out in resampler.resample(frame)
        ]
        chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    return np.concatenate(chunks)


def audio_seconds(path) -> float:
    """How long the first audio stream plays: decoded samples over the rate."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return sum(frame.samples for frame in container.decode(stream)) / stream.sample_rate


def f0(signal: np.ndarray) -> np.ndarray:
    """Fundamental frequency (Hz) of each voiced 60 ms window, by autocorrelation.

    The windowed signal's autocorrelation is divided by the window's own, so longer
    periods are not penalised; a window counts as voiced when its normalised peak
    between 60 and 400 Hz reaches 0.5.
    """
    n = int(0.06 * RATE)
    window = np.hanning(n)
    low, high = int(RATE / 400), int(RATE / 60)
    own = np.correlate(window, window, "full")[n - 1 : n - 1 + high]
    found = []
    for start in range(0, len(signal) - n, n // 4):
        part = signal[start : start + n] - signal[start : start + n].mean()
        if np.sqrt((part**2).mean()) < 0.02:
            continue
        weighted = part * window
        ac = np.correlate(weighted, weighted, "full")[n - 1 : n - 1 + high] / own
        lag = low + int(np.argmax(ac[low:high]))
        if ac[lag] >= 0.5 * ac[0]:
            found.append(RATE / lag)
    return np.array(found)


def peak_hz(signal: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    return float(np.fft.rfftfreq(len(signal), 1 / RATE)[np.argmax(spectrum)])


def test_pitch_moves_the_voice_by_at_least_3_semitones(speech_video, treated):
    before = f0(samples(speech_video))
    after = f0(samples(treated("pitch")))
    assert len(before) > 20  # the recording has voiced speech to measure
    assert len(after) > 20  # and so has the output: the voice is changed, not removed
    shift = 12 * np.log2(np.median(after) / np.median(before))
    assert abs(shift) >= 3


@pytest.mark.parametrize("voice", ["pitch", "mute", "bleep"])
def test_audio_length_stays_within_one_frame(speech_video, treated, voice):
    assert audio_seconds(treated(voice)) == pytest.approx(audio_seconds(speech_video), abs=1 / FPS)


def test_mute_is_silent(speech_video, treated):
    assert np.abs(samples(speech_video)).max() > 0.1  # there was speech
    assert np.abs(samples(treated("mute"))).max() < 1e-3


def test_bleep_is_a_tone(treated):
    audio = samples(treated("bleep"))
    assert peak_hz(audio[RATE : 2 * RATE]) == pytest.approx(BLEEP_HZ, abs=5)


@pytest.mark.parametrize("voice", ["pitch", "bleep"])
def test_identifying_tags_stay_stripped(treated, voice):
    output = treated(voice)
    with av.open(str(output)) as container:
        tags = [container.metadata, *(s.metadata for s in container.streams)]
        assert container.streams.audio[0].codec_context.name == "aac"
    assert not [t for t in tags if any("Jane Doe" in v for v in t.values())]
    assert b"Jane Doe" not in output.read_bytes()


def test_segments_limit_the_treatment(speech_video, tmp_path):
    output = pipeline("bleep", parse_segments("1-2")).process(speech_video, tmp_path / "o.mp4")
    before, after = samples(speech_video), samples(output.output)
    inside = slice(int(1.1 * RATE), int(1.9 * RATE))
    outside = slice(int(2.2 * RATE), int(3.5 * RATE))
    assert peak_hz(after[inside]) == pytest.approx(BLEEP_HZ, abs=5)
    assert peak_hz(after[outside]) != pytest.approx(BLEEP_HZ, abs=50)
    # Outside the range the speech is kept: the same sound, re-encoded.
    match = np.corrcoef(before[outside], after[outside])[0, 1]
    assert match > 0.9


def test_pitched_audio_keeps_its_start_and_sync(tmp_path, astronaut):
    """A track that starts 1.5 s into the video still starts there once pitched."""
    frames = panning_frames(astronaut[:256, :256], 40, step=2)
    source = video_with_audio(tmp_path / "late.mkv", frames, "pcm_s16le", 1.5)
    output = pipeline("pitch").process(source, tmp_path / "out.mp4").output
    assert sound_starts(output) == pytest.approx(1.5, abs=1 / FPS)


def filtered(voice: str, signal: np.ndarray, rate: int, segments=None, start=0.0) -> np.ndarray:
    """signal (channels x samples, float) through a VoiceFilter in chunks, joined again."""
    layout = {1: "mono", 2: "stereo"}[len(signal)]
    options = VoiceOptions(voice=voice, voice_segments=segments)
    voice_filter = VoiceFilter(options, sample_rate=rate, layout=layout, start=start)
    chunk = 1000
    out = []
    for start in range(0, signal.shape[1], chunk):
        part = np.ascontiguousarray(signal[:, start : start + chunk], np.float32)
        frame = av.AudioFrame.from_ndarray(part, format="fltp", layout=layout)
        frame.sample_rate = rate
        out += voice_filter.process(frame)
    out += voice_filter.flush()
    return np.concatenate([frame.to_ndarray() for frame in out], axis=1)


@pytest.mark.parametrize("voice", ["pitch", "mute", "bleep"])
def test_stereo_keeps_its_channels_and_every_sample(voice):
    rate = 44100
    t = np.arange(int(2.5 * rate)) / rate
    signal = np.stack([0.3 * np.sin(2 * np.pi * 220 * t), 0.3 * np.sin(2 * np.pi * 330 * t)])
    out = filtered(voice, signal, rate)
    assert out.shape == signal.shape


def test_pitch_moves_each_channel_by_the_stated_interval():
    rate = 16000
    t = np.arange(3 * rate) / rate
    signal = np.stack([0.3 * np.sin(2 * np.pi * 220 * t), 0.3 * np.sin(2 * np.pi * 330 * t)])
    out = filtered("pitch", signal, rate)
    for channel, hz in enumerate((220, 330)):
        expected = hz * 2 ** (PITCH_SEMITONES / 12)
        assert peak_hz(out[channel, rate : 2 * rate]) == pytest.approx(expected, abs=3)


def test_a_range_is_treated_whole_and_faded_just_outside():
    """Muted from 1 s to 2 s of a track that starts at 0.5 s: every sample in the range is
    silent, the sound fades out in the 10 ms before it and is untouched further away."""
    rate = 8000
    signal = np.full((1, 3 * rate), 0.5)
    out = filtered("mute", signal, rate, segments=((1.0, 2.0),), start=0.5)[0]
    times = 0.5 + np.arange(len(out)) / rate
    inside = (times >= 1.0) & (times < 2.0)
    assert np.abs(out[inside]).max() == 0
    fading = (times > 0.99) & (times < 1.0)
    assert 0 < out[fading].min() < 0.5
    far = (times < 0.98) | (times > 2.02)
    assert np.allclose(out[far], 0.5)


def test_keep_copies_the_audio_unchanged(speech_video, tmp_path):
    output = pipeline("keep").process(speech_video, tmp_path / "kept.mp4").output
    with av.open(str(speech_video)) as a, av.open(str(output)) as b:
        packets_in = [bytes(p) for p in a.demux(a.streams.audio[0]) if p.size]
        packets_out = [bytes(p) for p in b.demux(b.streams.audio[0]) if p.size]
    assert packets_out == packets_in


def test_photos_are_unaffected(tmp_path, astronaut):
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), astronaut)
    kept = pipeline("keep").process(photo, tmp_path / "kept.png").output
    muted = pipeline("mute").process(photo, tmp_path / "muted.png").output
    assert np.array_equal(cv2.imread(str(kept)), cv2.imread(str(muted)))


@pytest.mark.parametrize("text", ["5-2", "1-", "a-b", "-3-4", ","])
def test_bad_segments_are_refused(text):
    with pytest.raises(ValueError):
        parse_segments(text)


def test_segments_read_back():
    assert parse_segments("30-41, 0-12.5") == ((0.0, 12.5), (30.0, 41.0))


def test_unknown_voice_is_an_option_error():
    with pytest.raises(OptionError):
        VoiceOptions(voice="whisper")


def test_ranges_without_a_treatment_are_refused():
    with pytest.raises(OptionError, match="needs --voice"):
        VoiceOptions(voice_segments=((1.0, 2.0),))


def test_command_line_reports_bad_segments_in_one_line(tmp_path):
    done = run_veil(tmp_path / "none.mp4", "--voice", "mute", "--voice-segments", "9-3")
    assert done.returncode == 2
    assert "--voice-segments" in done.stderr
    assert "Traceback" not in done.stderr
