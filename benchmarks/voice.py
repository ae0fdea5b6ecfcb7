"""Cost of hiding voices: CPU and wall seconds of `VoiceFilter` per treatment, side by side.

Runs a minute of 48 kHz stereo noise (the filter's cost does not depend on the content) through
each `--voice` treatment in 1024-sample frames, as a decoder hands them over, interleaving the
treatments over several rounds so a shared machine slows them alike; prints the median of each.
Decoding and encoding are not included (an AAC encode is needed whatever the treatment).

    PYTHONPATH=src python benchmarks/voice.py [--seconds 60] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import av
import numpy as np

from veil.io.audio import VoiceFilter, VoiceOptions

RATE = 48000
FRAME = 1024


def run(voice: str, signal: np.ndarray) -> tuple[float, float]:
    """(wall, CPU) seconds to treat the signal; checks every sample came back."""
    voice_filter = VoiceFilter(
        VoiceOptions(voice=voice), sample_rate=RATE, layout="stereo", start=0.0
    )
    wall, cpu, given = time.perf_counter(), time.process_time(), 0
    for start in range(0, signal.shape[1], FRAME):
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(signal[:, start : start + FRAME]), format="fltp", layout="stereo"
        )
        frame.sample_rate = RATE
        given += sum(out.samples for out in voice_filter.process(frame))
    given += sum(out.samples for out in voice_filter.flush())
    assert given == signal.shape[1], (voice, given, signal.shape[1])
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    signal = 0.1 * np.random.default_rng(0).standard_normal((2, int(args.seconds * RATE)))
    signal = signal.astype(np.float32)
    voices = ("pitch", "bleep", "mute")
    times: dict[str, list[tuple[float, float]]] = {v: [] for v in voices}
    for _ in range(args.rounds):
        for voice in voices:
            times[voice].append(run(voice, signal))
    print(f"{args.seconds:g} s of {RATE} Hz stereo, median of {args.rounds} rounds")
    print("voice   wall s   CPU s")
    for voice in voices:
        wall = statistics.median(t[0] for t in times[voice])
        cpu = statistics.median(t[1] for t in times[voice])
        print(f"{voice:6} {wall:7.2f} {cpu:7.2f}")


if __name__ == "__main__":
    main()
