"""The batch journal: a damaged or unwritable one is one line and an exit code, not a traceback."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import cv2
import pytest

from veil.batch.journal import Journal
from veil.errors import OutputError

from batch_media import small_astronaut
from media import ENV, run_veil


@pytest.fixture()
def photos(tmp_path):
    (tmp_path / "in").mkdir()
    cv2.imwrite(str(tmp_path / "in" / "a.jpg"), small_astronaut())
    return tmp_path / "in"


def one_line(proc, code: int) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == code, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1, proc.stderr[-3000:]
    return lines[0]


def damage(path):
    data = bytearray(path.read_bytes())
    data[4096:8192] = b"\x13" * 4096  # the table's page
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["garbage", "damaged pages", "another table"])
def test_a_damaged_journal_is_a_one_line_error(tmp_path, photos, how):
    out = tmp_path / "out"
    journal = out / "veil-batch.sqlite"
    if how == "garbage":
        out.mkdir()
        journal.write_bytes(b"not a database" * 300)
    elif how == "damaged pages":
        assert run_veil("batch", photos, "-o", out, "-q").returncode == 0
        damage(journal)
    else:
        out.mkdir()
        sqlite3.connect(journal).execute("CREATE TABLE items (key TEXT)").connection.commit()
    line = one_line(run_veil("batch", photos, "-o", out, "-q"), 3)
    assert "batch journal" in line


def test_the_journal_reports_what_failed_on_it(tmp_path):
    (tmp_path / "journal.sqlite").write_bytes(b"not a database" * 300)
    with pytest.raises(OutputError, match="the file is damaged"):
        Journal(tmp_path / "journal.sqlite")


def test_a_read_only_output_is_a_one_line_error(tmp_path, photos):
    out = tmp_path / "read_only"
    out.mkdir()
    command = f'mount --bind "{out}" "{out}" && mount -o remount,ro,bind "{out}" && exec "$@"'
    wrapper = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", command, "sh"]
    if subprocess.run([*wrapper, "true"], capture_output=True).returncode != 0:
        pytest.skip("cannot mount a read-only folder here (unshare)")
    veil = [sys.executable, "-m", "veil", "batch", str(photos), "-o", str(out / "sub"), "-q"]
    proc = subprocess.run([*wrapper, *veil], capture_output=True, text=True, env=ENV, timeout=300)
    assert "Read-only file system" in one_line(proc, 3)
