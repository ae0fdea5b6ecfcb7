"""`veil serve`: start the local web app and print its address.

The socket is bound here, before uvicorn starts, so the printed address is the
real one even with `--port 0`, and a refused address fails before anything runs.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import OptionError, OutputError, VeilError
from .security import is_loopback

DEFAULT_PORT = 8765
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9._~-]{12,200}$")


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "veil" / "web"


def build_parser() -> argparse.ArgumentParser:
    from ..cli import add_detector_arguments

    parser = argparse.ArgumentParser(
        prog="veil serve",
        description="Start the local web app: drop photos and videos in a browser page, get them anonymized.",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default %(default)s; any other address needs --token)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help="port (default %(default)s; 0 picks a free one)",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("VEIL_TOKEN"),
        help="secret every request must carry (also read from VEIL_TOKEN); at least 12 of A-Z a-z 0-9 . _ ~ -",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help=f"where jobs and results are kept (default {default_data_dir()})",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="jobs processed at the same time (default %(default)s)",
    )
    parser.add_argument(
        "--keep-hours",
        type=float,
        default=24.0,
        help="results are deleted this long after they finish (default %(default)s)",
    )
    parser.add_argument(
        "--max-upload-mb",
        type=int,
        default=2000,
        help="largest accepted upload (default %(default)s)",
    )
    add_detector_arguments(parser)
    return parser


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
    if args.token is not None and not TOKEN_PATTERN.match(args.token):
        raise OptionError("--token must be 12 to 200 characters of A-Z a-z 0-9 . _ ~ -")
    if not is_loopback(args.host) and args.token is None:
        raise OptionError(
            f"refusing to listen on {args.host} without --token: anyone on the network could "
            "upload and download files; use --host 127.0.0.1 or set --token"
        )
    if args.workers < 1 or args.keep_hours <= 0 or args.max_upload_mb <= 0:
        raise OptionError("--workers, --keep-hours and --max-upload-mb must be positive")
    try:
        import uvicorn

        from .app import ServerConfig, create_app
    except ImportError as exc:
        raise VeilError(
            f"the web app needs its extra: pip install 'veil[web]' ({exc.name} is missing)"
        ) from None
    from ..cli import job_options_from_args

    data_dir = args.data_dir or default_data_dir()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{data_dir}: cannot create the data folder ({exc.strerror})") from None
    config = ServerConfig(
        data_dir=data_dir,
        token=args.token,
        workers=args.workers,
        keep_seconds=args.keep_hours * 3600,
        max_upload_bytes=args.max_upload_mb * 1_000_000,
        base_options=job_options_from_args(args),
    )
    sock = _bind(args.host, args.port)
    port = sock.getsockname()[1]
    shown = f"[{args.host.strip('[]')}]" if ":" in args.host.strip("[]") else args.host
    address = f"http://{shown}:{port}/" + (f"?token={args.token}" if args.token else "")
    print(f"veil web app: {address}", flush=True)
    print(
        f"data folder: {data_dir} (results kept {args.keep_hours:g} h); Ctrl-C stops",
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
