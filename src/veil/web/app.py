"""The FastAPI application: upload, job list, progress events, results, live camera.

Every file the server touches is named by the server: a job id checked against
a strict pattern picks the folder, and the file names inside it are fixed
('input.<type>', 'result.<ext>', the review files). The client's file name is
only ever shown back, sanitized.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import tempfile
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated

from fastapi import (
    Depends,
    FastAPI,
    HTTPException,
    Query,
    Request,
    WebSocket,
    WebSocketDisconnect,
)
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect

from .. import __version__
from ..audit import sidecar
from ..detectors import detector_for
from ..errors import InputError, OptionError, VeilError
from ..pipeline import Pipeline
from ..tracking import detector_options
from .limits import Admission
from .live import LiveSession
from .options import check_options, form, job_options, query_parameters
from .review import review_routes
from .security import AccessGuard, caller_of, parse_tokens
from .server import ServerConfig
from .store import DONE, FINAL_STATES, JobStore, private_dir
from .uploads import (
    Busy,
    UploadTimeout,
    UploadTooLarge,
    check_decodes,
    receive_upload,
    result_name,
    sanitize_name,
)
from .worker import WorkerPool, versions

JOB_ID = re.compile(r"^[0-9a-f]{32}$")
REVIEW_FILES = {
    "contact_sheet.png": "image/png",
    "heatmap.png": "image/png",
    "review.json": "application/json",
}
LIVE_MAX_FRAME = 8_000_000
# Camera frames are detected at their own size, so they are held to Full HD, the largest that
# fits the 1.5 GB every part of veil must stay within (a 4K frame did not: tests/web/test_app.py,
# the bounded server); larger ones are refused before decoding. The page sends the camera's
# default size (640x480 in Chromium).
LIVE_MAX_PIXELS = 1920 * 1080
EVERYONE = Query(False, alias="all", description="every session's jobs (token holders only)")
ERROR_STATUS = ((UploadTooLarge, 413), (UploadTimeout, 408), (Busy, 429))
EVENT_POLL_S = 0.2
EVENT_PING_S = 15.0
# The page's options as query parameters, so the OpenAPI schema lists them from the schema.
CHOSEN_OPTIONS = query_parameters()


def _static_dir() -> Path:
    return Path(str(resources.files("veil.web") / "static"))


def create_app(config: ServerConfig) -> AccessGuard:
    """The ASGI app (the FastAPI app wrapped in the access guard; the FastAPI app is `.app`)."""
    store = JobStore(config.data_dir)
    pool = WorkerPool(
        store, config.workers, config.keep_seconds, config.sweep_every, config.base_options
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        pool.start()
        try:
            yield
        finally:
            await asyncio.to_thread(pool.close)
            store.close()

    app = FastAPI(
        title="veil",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        description="Anonymize faces in images and videos. Upload a file as the raw request body "
        "to POST /api/jobs, follow GET /api/events or poll GET /api/jobs/{id}, then "
        "download GET /api/jobs/{id}/result.",
    )
    app.state.store, app.state.pool, app.state.config = store, pool, config
    app.mount("/static", StaticFiles(directory=_static_dir()), name="static")

    @app.exception_handler(VeilError)
    async def veil_error(_request: Request, exc: VeilError) -> JSONResponse:
        status = next((code for kind, code in ERROR_STATUS if isinstance(exc, kind)), 400)
        headers = {"Retry-After": "10"} if status == 429 else None
        return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse((_static_dir() / "index.html").read_text(encoding="utf-8"))

    @app.get("/api/options", summary="The page's controls, from the option schema, and limits")
    async def options() -> dict:
        return {
            "fields": form(),
            "max_upload_bytes": config.max_upload_bytes,
            "keep_seconds": config.keep_seconds,
        }

    _job_routes(app, store, pool, config)
    _result_routes(app, store)
    review_routes(app, store, pool, _job_or_404)
    _event_route(app, store)
    _live_route(app, config)
    return AccessGuard(app, parse_tokens(config.token))


def _visible(store: JobStore, request: Request, everyone: bool) -> list:
    """The jobs this caller may list: its session's, or every session's for a token holder."""
    caller = caller_of(request.scope)
    if not everyone:
        return store.list(caller.owner)
    if not caller.token_holder:
        raise HTTPException(403, "only a token holder may list every session's jobs (--token)")
    return store.list()


def _job_or_404(store: JobStore, job_id: str):
    job = store.get(job_id) if JOB_ID.match(job_id) else None
    if job is None:
        raise HTTPException(404, "no such job")
    return job


def _check_decodes(path: Path, kind: str, display: str, config: ServerConfig) -> None:
    """check_decodes with the server's pixel limit; errors name the upload by its display name."""
    try:
        check_decodes(path, kind, config.base_options.max_pixels)
    except VeilError as exc:
        raise type(exc)(str(exc).replace(str(path), display).replace(path.name, display)) from None


def _job_routes(app: FastAPI, store: JobStore, pool: WorkerPool, config: ServerConfig) -> None:
    admission = Admission(
        store, max_queued=config.max_queued, max_client_uploads=config.max_client_uploads
    )

    @app.post(
        "/api/jobs",
        status_code=201,
        summary="Upload one image or video (raw body) and queue it",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
                },
            }
        },
    )
    async def create_job(
        request: Request,
        chosen: Annotated[dict, Depends(CHOSEN_OPTIONS)],
        name: str = Query("upload", max_length=1000),
    ) -> dict:
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > config.max_upload_bytes:
            raise UploadTooLarge(
                f"upload is larger than the limit of {config.max_upload_bytes // 1_000_000} MB"
            )
        caller = caller_of(request.scope)
        with admission.upload(caller.client):
            job_id = store.new_id()
            display = sanitize_name(name, "upload")
            try:
                path, kind = await receive_upload(
                    request.stream(),
                    store.make_folder(job_id),
                    config.max_upload_bytes,
                    stall_seconds=config.upload_stall_seconds,
                    total_seconds=config.upload_seconds,
                )
                await asyncio.to_thread(_check_decodes, path, kind, display, config)
            except BaseException as exc:
                shutil.rmtree(store.folder(job_id), ignore_errors=True)
                if isinstance(exc, ClientDisconnect):  # an answer nobody reads, no traceback
                    raise InputError("the client stopped the upload; it was deleted") from None
                raise
            job = store.add(job_id, display, kind, chosen, owner=caller.owner)
            pool.submit(job_id)
        return job.public()

    @app.get("/api/jobs", summary="This browser session's jobs (all=true: every session's)")
    async def list_jobs(request: Request, everyone: bool = EVERYONE) -> list[dict]:
        return [job.public() for job in _visible(store, request, everyone)]

    @app.get("/api/jobs/{job_id}", summary="One job's state and progress")
    async def get_job(job_id: str) -> dict:
        return _job_or_404(store, job_id).public()

    @app.post("/api/jobs/{job_id}/cancel", summary="Stop a queued or running job")
    async def cancel_job(job_id: str) -> dict:
        _job_or_404(store, job_id)
        stopped = pool.cancel(job_id)
        return {"cancelled": stopped, "job": _job_or_404(store, job_id).public()}

    @app.delete(
        "/api/jobs/{job_id}", status_code=204, summary="Delete a finished job and its files"
    )
    async def delete_job(job_id: str) -> None:
        job = _job_or_404(store, job_id)
        if job.status not in FINAL_STATES:
            raise HTTPException(409, "the job is still queued or running; cancel it first")
        store.delete(job_id)


def _result_name(job) -> str:
    return result_name(job.name, job.output)


def _rendered(store: JobStore, job, version: int | None) -> Path:
    """The file of a finished job's result: the latest, or rendering `version` (1 = first)."""
    if job.status != DONE or not job.output:
        raise HTTPException(409, f"no result: the job is {job.status}")
    name = Path(job.output).name
    if version is not None:
        rendered = versions(store.folder(job.id), Path(name).suffix)
        if version > len(rendered):
            raise HTTPException(404, f"no version {version}; there are {len(rendered)}")
        name = rendered[version - 1]
    path = store.folder(job.id) / name
    if not path.is_file():
        raise HTTPException(410, "the result was deleted")
    return path


def _result_routes(app: FastAPI, store: JobStore) -> None:
    @app.get(
        "/api/jobs/{job_id}/result", summary="The anonymized file (download=false to view inline)"
    )
    async def get_result(
        job_id: str, download: bool = True, version: int | None = Query(None, ge=1)
    ) -> FileResponse:
        """version: an earlier rendering of a reviewed video (1 is the first; default latest)."""
        job = _job_or_404(store, job_id)
        path = _rendered(store, job, version)
        return FileResponse(
            path,
            filename=_result_name(job),
            content_disposition_type="attachment" if download else "inline",
        )

    @app.get("/api/jobs/{job_id}/audit", summary="The result's audit record (with audit=true)")
    async def get_audit(job_id: str) -> FileResponse:
        job = _job_or_404(store, job_id)
        if not job.public()["has_audit"]:
            raise HTTPException(404, "no audit record: the job did not ask for one or is not done")
        path = store.folder(job_id) / sidecar(Path(job.output)).name
        if not path.is_file():
            raise HTTPException(410, "the audit record was deleted")
        return FileResponse(
            path, filename=sidecar(Path(_result_name(job))).name, media_type="application/json"
        )

    @app.get("/api/jobs/{job_id}/review/{name}", summary="A file of a video's review report")
    async def get_review(job_id: str, name: str) -> FileResponse:
        job = _job_or_404(store, job_id)
        if not job.review or name not in REVIEW_FILES:
            raise HTTPException(404, "no such review file")
        path = store.folder(job_id) / job.review / name
        if not path.is_file():
            raise HTTPException(404, "no such review file")
        return FileResponse(path, media_type=REVIEW_FILES[name])

    @app.get(
        "/api/results.zip",
        summary="Several results in one zip (when ids is empty: this session's finished ones, "
        "or every session's with all=true)",
    )
    async def get_zip(request: Request, ids: str = "", everyone: bool = EVERYONE) -> FileResponse:
        wanted = [i for i in ids.split(",") if i]
        jobs = (
            [_job_or_404(store, i) for i in wanted]
            if wanted
            else _visible(store, request, everyone)
        )
        ready = [
            j
            for j in jobs
            if j.status == DONE and j.output and (store.folder(j.id) / j.output).is_file()
        ]
        if not ready:
            raise HTTPException(404, "no finished results to download")
        path = await asyncio.to_thread(_write_zip, store, ready, _result_name)
        return FileResponse(
            path,
            filename="veil_results.zip",
            media_type="application/zip",
            background=BackgroundTask(path.unlink, missing_ok=True),
        )


def _event_route(app: FastAPI, store: JobStore) -> None:
    @app.get(
        "/api/events",
        summary="Server-sent events: this session's job list (all=true: every session's) each "
        "time it changes",
    )
    async def events(request: Request, everyone: bool = EVERYONE) -> StreamingResponse:
        _visible(store, request, everyone)  # refuses all=true to anyone but a token holder
        owner = None if everyone else caller_of(request.scope).owner

        async def stream() -> AsyncIterator[str]:
            seen, quiet = -1, 0.0
            while not await request.is_disconnected():
                if store.version != seen:
                    seen = store.version
                    jobs = [job.public() for job in store.list(owner)]
                    yield f"event: jobs\ndata: {json.dumps(jobs)}\n\n"
                    quiet = 0.0
                elif quiet >= EVENT_PING_S:
                    yield ": ping\n\n"
                    quiet = 0.0
                await asyncio.sleep(EVENT_POLL_S)
                quiet += EVENT_POLL_S

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )


def _live_route(app: FastAPI, config: ServerConfig) -> None:
    live_lock = asyncio.Lock()

    @app.websocket("/api/live")
    async def live(ws: WebSocket) -> None:
        """Query parameters: the same options as POST /api/jobs."""
        try:
            chosen = check_options(ws.query_params)
        except OptionError as exc:
            await ws.close(code=1008, reason=str(exc))
            return
        await ws.accept()
        options = job_options(chosen, "image", config.base_options)
        wanted = detector_options(options.tracking, options.detector)
        detector = await asyncio.to_thread(detector_for, wanted)  # loads once, shared with jobs
        session = LiveSession(
            Pipeline(options, detector=detector),
            max_pixels=min(LIVE_MAX_PIXELS, config.base_options.max_pixels),
        )
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                data = message.get("bytes")
                if data is None:
                    continue
                if len(data) > LIVE_MAX_FRAME:
                    await ws.send_text(json.dumps({"error": "frame too large"}))
                    continue
                try:
                    async with live_lock:
                        out = await asyncio.to_thread(session.process, data)
                except InputError as exc:
                    await ws.send_text(json.dumps({"error": f"{exc}; nothing shown"}))
                else:
                    await ws.send_bytes(out)
        except WebSocketDisconnect:
            return


def _write_zip(store: JobStore, jobs: list, name_for) -> Path:
    tmp_dir = private_dir(store.root / "tmp")
    fd, name = tempfile.mkstemp(prefix="results-", suffix=".zip", dir=tmp_dir)
    path = Path(name)
    used: set[str] = set()
    with open(fd, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_STORED) as archive:
        for job in jobs:
            entry = name_for(job)
            stem, suffix, n = Path(entry).stem, Path(entry).suffix, 2
            while entry in used:
                entry = f"{stem} ({n}){suffix}"
                n += 1
            used.add(entry)
            archive.write(store.folder(job.id) / job.output, entry)
            record = store.folder(job.id) / sidecar(Path(job.output)).name
            if job.public()["has_audit"] and record.is_file():
                archive.write(record, sidecar(Path(entry)).name)
    return path
