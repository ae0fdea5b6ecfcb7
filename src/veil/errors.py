"""User-facing errors.

Anything the user can fix (a bad path, an unreadable file, a bad option) is a
`VeilError` whose message is one line; the CLI prints it and exits non-zero.
The CLI also turns what the system does to a run into one line and a code:
out of memory (5, as ProcessingError), a write the system refused that no
module turned into an OutputError (3), Ctrl-C (130) and SIGTERM (143, see
`Terminated`). Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class VeilError(Exception):
    """Base class: the message is shown to the user as-is, on one line."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class InputError(VeilError):
    """An input path is missing, unreadable, empty or not a supported image/video."""

    exit_code = 2


class OptionError(VeilError):
    """A command-line or API option has an invalid value or combination."""

    exit_code = 2


class OutputError(VeilError):
    """The output cannot be written (exists, read-only folder, would overwrite the input)."""

    exit_code = 3


class DetectorError(VeilError):
    """A detector cannot be loaded (missing extra, missing weights, bad model file)."""

    exit_code = 4


class ProcessingError(VeilError):
    """Processing stopped part-way; nothing un-anonymized was written."""

    exit_code = 5


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`, a service manager, a container stopping), raised in the main thread.

    A KeyboardInterrupt, so that everything that cleans up after Ctrl-C (partial
    outputs, batch workers) does the same here.
    """

    exit_code = 143
