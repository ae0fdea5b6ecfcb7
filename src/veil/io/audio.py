"""Hiding the voice in a video's audio: mute, bleep or pitch, in chosen time ranges or throughout.

A voice identifies a person as well as a face does, so `--voice` treats the audio
that the video sink re-encodes (io/video.py decodes it, `VoiceFilter` changes it,
the sink encodes it at the input's start time):

- keep: the audio is copied unchanged (the default).
- mute: silence.
- bleep: a steady tone in place of the sound.
- pitch: pitch and formants moved down `PITCH_SEMITONES` through FFmpeg's filter graph:
  `asetrate` plays the samples slower (lower pitch and formants, longer), `atempo` brings
  the length back without touching the pitch, `aresample` returns to the input's rate.
  Speech stays intelligible, the speaker's timbre does not. A fixed shift can be undone
  by shifting back, so mute or bleep are the choices for a voice that must not be heard.

`--voice-segments` limits the treatment to time ranges (seconds on the video's timeline,
as `--export` reports frame times); the sound outside them is kept, re-encoded. Whatever
the treatment, the output has exactly as many samples as the input, starting at the same
time, so the audio stays in sync with the video.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from ..errors import OptionError
from ..options import Web, check, option

VOICES = ("keep", "mute", "pitch", "bleep")
# Down 5 semitones: the speaker's pitch and formants both move by a third, while speech stays
# clear (larger shifts blur consonants); atempo handles the 1.33x tempo this needs in one stage.
# tests/io/test_audio.py measures -5.0 semitones on a spoken recording.
PITCH_SEMITONES = -5.0
BLEEP_HZ = 1000.0
BLEEP_LEVEL = 0.3  # about -10 dBFS: clearly a bleep, not painful
FADE_SECONDS = 0.01  # the treatment fades in and out just outside each range: no click
WORK_FORMAT = "fltp"  # float planar: what the filters and numpy work on

Segments = tuple[tuple[float, float], ...]


def parse_segments(text: str) -> Segments:
    """'0-12.5,30-41' -> ((0.0, 12.5), (30.0, 41.0)); ValueError with the reason."""
    ranges = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        start, sep, end = part.partition("-")
        try:
            low, high = float(start), float(end)
        except ValueError:
            raise ValueError(f"time range {part!r} is not START-END in seconds") from None
        if not sep or not (0 <= low < high) or not math.isfinite(high):
            raise ValueError(f"time range {part!r} must be START-END with 0 <= START < END")
        ranges.append((low, high))
    if not ranges:
        raise ValueError("no time ranges given (e.g. 0-12.5,30-41)")
    return tuple(sorted(ranges))


def show_segments(segments: Segments) -> str:
    """The inverse of parse_segments."""
    return ",".join(f"{low:g}-{high:g}" for low, high in segments)


def _voice(default, *flags, **spec):
    return option(default, *flags, group="audio", commands=("main", "batch"), **spec)


@dataclass(frozen=True)
class VoiceOptions:
    """What happens to the voices in a video's audio (module docstring)."""

    voice: str = _voice(
        "keep",
        "--voice",
        choices=VOICES,
        help="hide voices in the audio: keep (copy unchanged), mute, pitch (pitch and formants "
        "shifted down, duration kept) or bleep (a tone) (default %(default)s)",
        web=Web(
            "Voice",
            choices=VOICES,
            labels={"keep": "Keep", "mute": "Mute", "pitch": "Change pitch", "bleep": "Bleep"},
        ),
    )
    voice_segments: Segments | None = _voice(
        None,
        "--voice-segments",
        type=parse_segments,
        show=show_segments,
        metavar="RANGES",
        web=Web("Voice only in (s)", example="0-12.5,30-41"),
        help="apply --voice only in these time ranges, in seconds on the video's timeline, "
        "e.g. 0-12.5,30-41 (default: the whole audio)",
    )

    def __post_init__(self) -> None:
        check(self)
        if self.voice_segments is not None and not self.active:
            # Ranges alone would leave the voice they were meant to hide.
            raise OptionError("--voice-segments needs --voice mute, pitch or bleep")

    @property
    def active(self) -> bool:
        """Whether the audio is changed (and so must be re-encoded)."""
        return self.voice != "keep"


class VoiceFilter:
    """One audio track's decoded frames in, the same samples with the voice hidden out.

    `start`: the time (seconds) of the track's first sample. Output frames carry no
    timestamps: they follow each other without gaps, exactly as many samples as went in
    once `flush` has run.
    """

    def __init__(self, options: VoiceOptions, *, sample_rate: int, layout: str, start: float):
        self.options = options
        self.rate = sample_rate
        self.layout = layout
        self.start = start
        self._to_work = av.AudioResampler(format=WORK_FORMAT, layout=layout, rate=sample_rate)
        self._original: list[np.ndarray] = []  # waiting for their treated samples
        self._treated: list[np.ndarray] = []  # pitch: the filter graph's output so far
        self._taken = 0  # samples in
        self._given = 0  # samples out
        self._graph = self._pitch_graph() if options.voice == "pitch" else None

    def _pitch_graph(self) -> av.filter.Graph:
        factor = 2 ** (PITCH_SEMITONES / 12)
        graph = av.filter.Graph()
        chain = [
            graph.add_abuffer(
                format=WORK_FORMAT,
                sample_rate=self.rate,
                layout=self.layout,
                time_base=Fraction(1, self.rate),
            ),
            graph.add("asetrate", str(round(self.rate * factor))),
            graph.add("atempo", f"{1 / factor:.6f}"),
            graph.add("aresample", str(self.rate)),
            # The sink would take any sample format; numpy below reads planar float.
            graph.add("aformat", f"sample_fmts={WORK_FORMAT}:channel_layouts={self.layout}"),
            graph.add("abuffersink"),
        ]
        for upstream, downstream in zip(chain, chain[1:]):
            upstream.link_to(downstream)
        graph.configure()
        return graph

    def process(self, frame: av.AudioFrame) -> list[av.AudioFrame]:
        """The output frames that are ready once `frame` is in."""
        for work in self._to_work.resample(frame):
            self._take(work.to_ndarray())
        return list(self._ready())

    def flush(self) -> list[av.AudioFrame]:
        """The rest: the treated track is cut or padded with silence to the input's length."""
        for work in self._to_work.resample(None):
            self._take(work.to_ndarray())
        if self._graph is not None:
            self._graph.push(None)
            self._pull()
            owed = sum(a.shape[1] for a in self._original) - sum(a.shape[1] for a in self._treated)
            if owed > 0:
                self._treated.append(np.zeros((self._channels, owed), np.float32))
        return list(self._ready())

    @property
    def _channels(self) -> int:
        return av.AudioLayout(self.layout).nb_channels

    def _take(self, samples: np.ndarray) -> None:
        samples = np.ascontiguousarray(samples, dtype=np.float32)
        self._original.append(samples)
        if self._graph is not None:
            frame = av.AudioFrame.from_ndarray(samples, format=WORK_FORMAT, layout=self.layout)
            frame.sample_rate = self.rate
            frame.pts, frame.time_base = self._taken, Fraction(1, self.rate)
            self._graph.push(frame)
            self._pull()
        self._taken += samples.shape[1]

    def _pull(self) -> None:
        assert self._graph is not None
        while True:
            try:
                out = self._graph.pull()
            except (av.error.BlockingIOError, av.error.EOFError):
                return
            self._treated.append(np.asarray(out.to_ndarray(), np.float32))

    def _ready(self) -> Iterator[av.AudioFrame]:
        """Frames of the original samples, treated where the ranges say, as far as both reach."""
        original = _joined(self._original, self._channels)
        count = original.shape[1]
        if self._graph is not None:
            treated = _joined(self._treated, self._channels)
            count = min(count, treated.shape[1])
            self._treated = [treated[:, count:]]
        else:
            treated = self._generated(count)
        self._original = [original[:, count:]]
        if count == 0:
            return
        weight = self._weights(count)
        out = weight * treated[:, :count] + (1 - weight) * original[:, :count]
        self._given += count
        frame = av.AudioFrame.from_ndarray(out, format=WORK_FORMAT, layout=self.layout)
        frame.sample_rate = self.rate
        yield frame

    def _generated(self, count: int) -> np.ndarray:
        """mute: silence; bleep: the tone, continuous across frames."""
        if self.options.voice == "mute":
            return np.zeros((self._channels, count), np.float32)
        n = np.arange(self._given, self._given + count)
        tone = BLEEP_LEVEL * np.sin(2 * np.pi * BLEEP_HZ * n / self.rate)
        return np.broadcast_to(tone.astype(np.float32), (self._channels, count))

    def _weights(self, count: int) -> np.ndarray:
        """How much of the treated sound each of the next `count` output samples takes: 1
        inside the ranges (everywhere without ranges), 0 away from them, and a ramp of
        FADE_SECONDS just outside each range, so the switch does not click and no sample
        inside a range keeps any of the original."""
        segments = self.options.voice_segments
        if segments is None:
            return np.ones(count, np.float32)
        times = self.start + np.arange(self._given, self._given + count) / self.rate
        weights = np.zeros(count)
        for low, high in segments:
            ramp = np.minimum(times - (low - FADE_SECONDS), (high + FADE_SECONDS) - times)
            weights = np.maximum(weights, np.clip(ramp / FADE_SECONDS, 0, 1))
        return weights.astype(np.float32)


def _joined(parts: list[np.ndarray], channels: int) -> np.ndarray:
    parts = [p for p in parts if p.shape[1]]
    if not parts:
        return np.zeros((channels, 0), np.float32)
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
