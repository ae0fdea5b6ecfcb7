"""Run a command as a measured child process: exit code, wall and CPU seconds, peak memory.

Linux starts a child's peak resident set size (ru_maxrss) at its parent's peak when the
child execs, so a command started from a process that has built clips or loaded a detector
reports that process's memory instead of its own. Each command is therefore started by a
fresh interpreter that imports nothing beyond the standard library and reports the
command's own figures back: ru_maxrss for the command alone, the same figure as
`/usr/bin/time -v`'s "Maximum resident set size".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# Run by the fresh interpreter: argv = [report fd, command...]; wall time starts at the
# command's start, so the interpreter's own start is not counted.
_SPAWN = """
import json, os, subprocess, sys, time
report = int(sys.argv[1])
start = time.perf_counter()
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
seconds = time.perf_counter() - start
figures = [os.waitstatus_to_exitcode(status), seconds, usage.ru_utime + usage.ru_stime,
           usage.ru_maxrss / 1024]
os.write(report, json.dumps(figures).encode())
"""


@dataclass(frozen=True)
class Measured:
    """returncode: the command's; seconds: wall; cpu_s: user + system; rss_mib: its peak
    resident set size; stderr: what it wrote there."""

    returncode: int
    seconds: float
    cpu_s: float
    rss_mib: float
    stderr: str


def measured(cmd: Sequence[str]) -> Measured:
    """Run cmd (its output discarded, its errors kept) and measure it alone. It imports this
    checkout's veil first, then whatever PYTHONPATH adds (packages installed beside it)."""
    path = os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    read, write = os.pipe()
    with os.fdopen(read, "rb") as report:
        try:
            proc = subprocess.Popen(
                [sys.executable, "-c", _SPAWN, str(write), *map(str, cmd)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                pass_fds=(write,),
            )
        finally:
            os.close(write)
        _, err = proc.communicate()
        figures = report.read()
    stderr = err.decode(errors="replace")
    if proc.returncode != 0 or not figures:
        raise RuntimeError(f"the measuring process failed: {stderr.strip()[-300:]}")
    code, seconds, cpu_s, rss_mib = json.loads(figures)
    return Measured(code, seconds, cpu_s, rss_mib, stderr)
