"""Compiled OpenVINO models kept between runs (detectors/compiled.py)."""

from __future__ import annotations

import importlib.util
import logging
import os
import time

import numpy as np
import pytest

from veil.detectors import DetectorOptions, create_detector, runtime
from veil.detectors.compiled import STALE_SECONDS, prune

from media import compile_by_use

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("openvino") is None, reason="openvino is not installed"
)

SHAPE = (1, 64, 96, 3)


def engine():
    return create_detector(
        DetectorOptions(backend="openvino", precision="fp32", threads=1)
    ).net.engine


def blobs(cache):
    return sorted((cache / "veil" / "openvino").rglob("*.blob"))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path


def test_a_run_reads_back_what_an_earlier_run_compiled(cache, monkeypatch):
    checks = []
    check = runtime.OpenVinoEngine._check_supported
    monkeypatch.setattr(
        runtime.OpenVinoEngine, "_check_supported", lambda self: checks.append(1) or check(self)
    )
    blob = np.random.default_rng(0).integers(0, 256, SHAPE, np.uint8)
    first = engine()
    expected = first.run(blob)  # the first shape: compiled and kept, with the shape-agnostic one
    first._take(None)
    stored = blobs(cache)
    assert [p.stem for p in stored] == ["1x64x96x3-1", "any"]
    written = [p.stat().st_ino for p in stored]

    second = engine()
    again = second.run(blob)
    assert all(np.array_equal(a, b) for a, b in zip(expected, again))
    assert blobs(cache) == stored
    assert [p.stat().st_ino for p in stored] == written  # read, not written again
    assert second._compile_seconds == []  # nothing compiled afresh
    assert checks == [1]  # the CPU plugin's support was checked once


def test_a_damaged_model_is_compiled_afresh(cache, caplog):
    blob = np.zeros(SHAPE, np.uint8)
    first = engine()
    expected = first.run(blob)
    # The shape-agnostic model compiles beside the first shape: its file must be written whole
    # (not still a partial one beside the kept shape) before the cache is read.
    first._take(None)
    (kept,) = [p for p in blobs(cache) if p.stem != "any"]
    kept.write_bytes(kept.read_bytes()[:1000])
    with caplog.at_level(logging.WARNING, logger="veil"):
        again = engine().run(blob)
    assert all(np.array_equal(a, b) for a, b in zip(expected, again))
    assert any("recompiling the damaged model" in r.getMessage() for r in caplog.records)
    assert kept.stat().st_size > 1000


def test_without_a_cache_folder_models_compile_as_usual(tmp_path, monkeypatch):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(not_a_folder))
    blob = np.zeros(SHAPE, np.uint8)
    assert [o.shape for o in engine().run(blob)] == [o.shape for o in engine().run(blob)]


def test_shapes_compiled_by_use_are_not_kept(cache):
    """Only the shapes a run asks for up front are stored; crops differ from video to video."""
    first = engine()
    first.run(np.zeros(SHAPE, np.uint8))
    compile_by_use(first, (1, 32, 32, 3))
    assert "1x3x32x32-1" not in {p.stem for p in blobs(cache)}


def test_the_least_recently_used_models_go_beyond_the_budget(tmp_path):
    folder = tmp_path / "openvino" / "model"
    folder.mkdir(parents=True)
    now = time.time()
    ages = {"old.blob": 102, "middle.blob": 101, "new.blob": 100}
    ages |= {".veil-partial-dead.blob": STALE_SECONDS + 10, ".veil-partial-alive.blob": 5}
    for name, age in ages.items():
        (folder / name).write_bytes(b"\0" * 1000)
        os.utime(folder / name, (now - age, now - age))
    (folder / "supported").touch()
    prune(tmp_path / "openvino", budget=2500)
    assert sorted(p.name for p in folder.iterdir()) == [
        ".veil-partial-alive.blob",
        "middle.blob",
        "new.blob",
        "supported",
    ]
