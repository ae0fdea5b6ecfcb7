"""`veil serve`: start the local web app and print its address.

The socket is bound here, before uvicorn starts, so the printed address is the
real one even with `--port 0`, and a refused address fails before anything runs.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from ..errors import OptionError, OutputError, VeilError
from ..options import CommandParser, build, check, option
from ..pipeline import JobOptions
from .security import is_loopback, parse_tokens

serving = partial(option, group="server", commands=("serve",))


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "veil" / "web"


@dataclass
class ServerConfig:
    """Everything `veil serve` can set; the defaults suit one person on one machine."""

    data_dir: Path | None = serving(
        None,
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="where jobs and results are kept (default: $XDG_DATA_HOME/veil/web, "
        "else ~/.local/share/veil/web)",
    )
    host: str = serving(
        "127.0.0.1",
        "--host",
        help="address to listen on (default %(default)s; any other address needs --token)",
    )
    port: int = serving(
        8765, "--port", ge=0, le=65535, help="port (default %(default)s; 0 picks a free one)"
    )
    token: str | None = serving(
        None,
        "--token",
        help="secret every request must carry (also read from VEIL_TOKEN); at least 12 of "
        "A-Z a-z 0-9 . _ ~ -; several people: LABEL:SECRET,LABEL:SECRET, each label naming "
        "its holder in audit records",
    )
    workers: int = serving(
        1, "--workers", ge=1, help="jobs processed at the same time (default %(default)s)"
    )
    keep_seconds: float = serving(
        24 * 3600.0,
        "--keep-hours",
        scale=3600,
        gt=0,
        metavar="HOURS",
        help="results are deleted this long after they finish (default %(default)s)",
    )
    max_upload_bytes: int = serving(
        2_000_000_000,
        "--max-upload-mb",
        type=int,
        scale=1_000_000,
        gt=0,
        metavar="MB",
        help="largest accepted upload (default %(default)s)",
    )
    max_queued: int = serving(
        50,
        "--max-queued",
        ge=1,
        metavar="N",
        help="jobs waiting or running at once, all users together; more uploads are refused "
        "with HTTP 429 (default %(default)s)",
    )
    max_client_uploads: int = serving(
        4,
        "--max-client-uploads",
        ge=1,
        metavar="N",
        help="uploads one browser session (or, without one, one address) may send at once; "
        "more are refused with HTTP 429 (default %(default)s)",
    )
    upload_stall_seconds: float = serving(
        30.0,
        "--upload-stall-seconds",
        gt=0,
        metavar="S",
        help="an upload that sends nothing for this long is cut off and its partial file "
        "deleted (HTTP 408; default %(default)s)",
    )
    upload_seconds: float = serving(
        3600.0,
        "--upload-minutes",
        scale=60,
        gt=0,
        metavar="MIN",
        help="an upload still unfinished after this long is cut off and its partial file "
        "deleted (HTTP 408; default %(default)s)",
    )
    sweep_every: float = 60.0
    base_options: JobOptions = field(default_factory=JobOptions)

    def __post_init__(self) -> None:
        check(self)
        try:
            parse_tokens(self.token)
        except ValueError as exc:
            raise OptionError(f"--token: {exc}") from None
        if not is_loopback(self.host) and self.token is None:
            raise OptionError(
                f"refusing to listen on {self.host} without --token: anyone on the network "
                "could upload and download files; use --host 127.0.0.1 or set --token"
            )


def build_parser() -> CommandParser:
    return CommandParser(
        "serve",
        description="Start the local web app: drop photos and videos in a browser page, get "
        "them anonymized.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise OptionError(f"cannot listen on {host}:{port} ({exc.strerror})") from None
    sock.listen(128)
    return sock


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    config = build(
        ServerConfig,
        args,
        "serve",
        token=args.token or os.environ.get("VEIL_TOKEN"),
        data_dir=args.data_dir or default_data_dir(),
    )
    try:
        import uvicorn

        from .app import create_app
    except ImportError as exc:
        raise VeilError(
            f"the web app needs its extra: pip install 'veil[web]' ({exc.name} is missing)"
        ) from None
    os.umask(0o077)  # every file the server writes (results, review files, zips) is 0600
    try:
        config.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"{config.data_dir}: cannot create the data folder ({exc.strerror})"
        ) from None
    sock = _bind(config.host, config.port)
    port = sock.getsockname()[1]
    host = config.host.strip("[]")
    shown = f"[{host}]" if ":" in host else config.host
    tokens = parse_tokens(config.token)
    first = next(iter(tokens), None)
    address = f"http://{shown}:{port}/" + (f"?token={first}" if first else "")
    print(f"veil web app: {address}", flush=True)
    if len(tokens) > 1:
        print(
            f"tokens for: {', '.join(tokens.values())} (each opens the page with "
            "?token=ITS_SECRET; the address above holds the first)",
            flush=True,
        )
    print(
        f"data folder: {config.data_dir} (results kept {config.keep_seconds / 3600:g} h); "
        "Ctrl-C stops",
        file=sys.stderr,
        flush=True,
    )
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config),
            log_level="warning",
            timeout_graceful_shutdown=3,
            ws_max_size=16 * 1024 * 1024,
        )
    )
    server.run(sockets=[sock])
    return 0
