"""Output names: planned without collisions, reserved across processes, kept inside their root,
written atomically with the user's umask; inputs found without veil's own outputs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from veil.errors import InputError, OptionError, OutputError
from veil.io.paths import (
    TEMP_PREFIX,
    atomic_output,
    collect_inputs,
    free_name,
    plan_output,
    plan_outputs,
    remove_stale_partials,
    reserve,
    temp_path,
)

from media import ENV


def touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_output_planning(tmp_path):
    src = touch(tmp_path / "a" / "photo.jpg")
    assert plan_output(src, src.parent, None, many=False) == tmp_path / "a" / "photo_anonymized.jpg"
    assert plan_output(src, src.parent, tmp_path / "o.png", many=False) == tmp_path / "o.png"
    assert (
        plan_output(src, tmp_path, tmp_path / "out", many=True)
        == tmp_path / "out" / "a" / "photo.jpg"
    )
    with pytest.raises(OutputError, match="overwrite the input"):
        plan_output(src, src.parent, src, many=False, overwrite=True)
    taken = touch(tmp_path / "a" / "photo_anonymized.jpg", b"y")
    assert (
        plan_output(src, src.parent, None, many=False)
        == tmp_path / "a" / "photo_anonymized (2).jpg"
    )
    assert plan_output(src, src.parent, None, many=False, overwrite=True) == taken
    assert free_name(tmp_path / "new.jpg") == tmp_path / "new.jpg"


def test_same_names_in_one_run_get_free_names(tmp_path):
    first, second = touch(tmp_path / "d1" / "x.jpg"), touch(tmp_path / "d2" / "x.jpg")
    items = collect_inputs([first, second])
    targets = [t for _, t in plan_outputs(items, tmp_path / "out", many=True)]
    assert targets == [tmp_path / "out" / "x.jpg", tmp_path / "out" / "x (2).jpg"]


def test_videos_that_become_the_same_mp4_get_free_names(tmp_path):
    touch(tmp_path / "in" / "clip.avi")
    touch(tmp_path / "in" / "clip.mp4")
    items = collect_inputs([tmp_path / "in"])
    targets = [t.name for _, t in plan_outputs(items, tmp_path / "out", many=True)]
    assert targets == ["clip.mp4", "clip (2).mp4"]


def test_overwrite_never_replaces_an_input_or_an_output_of_the_same_run(tmp_path):
    photo = touch(tmp_path / "a.jpg")
    earlier = touch(tmp_path / "a_anonymized.jpg")  # an input too, named on the command line
    items = collect_inputs([photo, earlier])
    targets = [t.name for _, t in plan_outputs(items, None, many=True, overwrite=True)]
    assert targets == ["a_anonymized (2).jpg", "a_anonymized_anonymized.jpg"]


def test_mirrored_output_stays_in_its_folder_even_through_a_symlink(tmp_path):
    src = touch(tmp_path / "in" / "sub" / "x.jpg")
    (tmp_path / "out").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out" / "sub").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OutputError, match="outside the output folder"):
        plan_output(src, tmp_path / "in", tmp_path / "out", many=True)


@pytest.mark.parametrize(
    "name, message",
    [("result", "no file extension"), ("result.mp4", "cannot write images as '.mp4'")],
)
def test_output_name_must_fit_the_input(tmp_path, name, message):
    src = touch(tmp_path / "photo.jpg")
    with pytest.raises(OptionError, match=message):
        plan_output(src, tmp_path, tmp_path / name, many=False)


def test_folder_inputs_leave_out_veils_own_outputs(tmp_path, caplog):
    for name in ("ab.jpg", "ab_anonymized.jpg", "ab_anonymized (2).jpg", "out/b.jpg"):
        touch(tmp_path / "in" / name)
    found = collect_inputs([tmp_path / "in"], recursive=True, exclude=tmp_path / "in" / "out")
    assert [p.name for p, _ in found] == ["ab.jpg"]
    assert "left out 3 file(s)" in caplog.text


def test_an_output_folder_equal_to_the_input_is_refused_not_emptied(tmp_path):
    touch(tmp_path / "in" / "a.jpg")
    items = collect_inputs([tmp_path / "in"], exclude=tmp_path / "in")
    with pytest.raises(OutputError, match="refusing to overwrite the input"):
        plan_outputs(items, tmp_path / "in", many=True)


def test_collect_inputs_recursive(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    for name in ("d/1.jpg", "d/sub/2.png", "d/notes.txt", f"d/{TEMP_PREFIX}x.jpg"):
        (tmp_path / name).write_bytes(b"x")
    flat = [p.name for p, _ in collect_inputs([tmp_path / "d"])]
    deep = [p.name for p, _ in collect_inputs([tmp_path / "d"], recursive=True)]
    assert flat == ["1.jpg"]
    assert sorted(deep) == ["1.jpg", "2.png"]
    with pytest.raises(InputError, match="no such file"):
        collect_inputs([tmp_path / "missing.jpg"])
    with pytest.raises(InputError, match="not a supported"):
        collect_inputs([tmp_path / "d" / "notes.txt"])


def test_atomic_output_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.jpg"
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []
    with atomic_output(target) as tmp:
        tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole"
    assert list(tmp_path.iterdir()) == [target]


HOLD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from veil.io.paths import reserve
    slot = reserve(Path(sys.argv[1]), overwrite=False)
    print(slot.target.name, flush=True)
    sys.stdin.read()  # hold the name until told
    slot.tmp.write_bytes(b"other")
    slot.commit()
    """
)


def hold_in_other_process(target):
    """A second process that reserved `target`'s name and keeps it until its stdin closes."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(target)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    return proc, proc.stdout.readline().strip()


def test_a_name_held_by_another_process_is_not_taken(tmp_path):
    target = tmp_path / "x.jpg"
    proc, held = hold_in_other_process(target)
    try:
        with reserve(target) as slot:
            slot.tmp.write_bytes(b"mine")
        with pytest.raises(OutputError, match="another veil process"):
            reserve(target, overwrite=True)
    finally:
        proc.communicate("", timeout=30)
    assert held == "x.jpg"
    assert slot.target.name == "x (2).jpg"
    assert target.read_bytes() == b"other"
    assert slot.target.read_bytes() == b"mine"


def test_stale_partials_go_but_a_live_processs_stay(tmp_path):
    proc, _ = hold_in_other_process(tmp_path / "live.mp4")
    stale = touch(tmp_path / f"{TEMP_PREFIX}killed.mp4")
    try:
        removed = remove_stale_partials(tmp_path)
        live_kept = temp_path(tmp_path / "live.mp4").exists()
    finally:
        proc.communicate("", timeout=30)
    assert removed == 1
    assert not stale.exists()
    assert live_kept


def test_a_dead_runs_partial_of_the_same_name_is_reused(tmp_path):
    target = tmp_path / "x.jpg"
    touch(temp_path(target), b"half of a killed run")
    with reserve(target) as slot:
        slot.tmp.write_bytes(b"whole")
    assert slot.target == target
    assert target.read_bytes() == b"whole"


@pytest.mark.parametrize("umask", [0o027, 0o002])
def test_outputs_follow_the_umask(tmp_path, umask):
    code = "from pathlib import Path; from veil.io.paths import atomic_output\n"
    code += f"with atomic_output(Path({str(tmp_path / 'o.csv')!r})) as t: t.write_text('x')"
    subprocess.run(
        [sys.executable, "-c", code], env=ENV, check=True, preexec_fn=lambda: os.umask(umask)
    )
    assert (tmp_path / "o.csv").stat().st_mode & 0o777 == 0o666 & ~umask
