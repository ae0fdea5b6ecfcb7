"""The review page's API: look at a finished video frame by frame, correct its detections,
render a new version from them.

A video job keeps its original and its detections (detections.json, the --export json
format with track ids) until it expires. Every frame this API serves is anonymized with
the current, edited detections; the original pixels go out only when the page asks for
`original=true` (the job owner's "show original" toggle, off by default), and each such
request is logged. Edits go through veil.editing and are saved at once; a re-render queues
the job on the worker pool, which renders from the edited file without detecting again and
writes the next version (result-v2.mp4, ...) beside the earlier ones.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import cv2
from fastapi import FastAPI, HTTPException, Request, Response
from pydantic import BaseModel, Field

from .. import audit, editing
from .. import hide as anon
from ..detections import Detections
from ..errors import InputError
from ..io.export import detections_by_frame, read_rows, validate_rows, write_rows
from ..io.frame_access import FrameReader
from ..pipeline import JobOptions
from .options import job_options
from .security import caller_of
from .store import DONE, Job, JobStore
from .worker import DETECTIONS, WorkerPool, log_edit, versions

log = logging.getLogger("veil.web")
JPEG_QUALITY = 90


class Edit(BaseModel):
    """One correction: add (frame, box), move (frame, track_id, box), delete (track_id) or
    hide (track_id, hide)."""

    op: Literal["add", "move", "delete", "hide"]
    frame: int | None = Field(None, ge=0)
    track_id: int | None = Field(None, ge=0)
    box: list[float] | None = Field(None, min_length=4, max_length=4)
    hide: bool = True


def review_routes(
    app: FastAPI, store: JobStore, pool: WorkerPool, job_or_404: Callable[[JobStore, str], Job]
) -> None:
    """The routes under /api/jobs/{id}/ that the review page (static/review.html) uses."""
    locks: dict[str, threading.Lock] = {}

    def reviewable(job_id: str):
        job = job_or_404(store, job_id)
        folder = store.folder(job_id)
        if job.kind != "video" or not (folder / DETECTIONS).is_file():
            raise HTTPException(404, "this job has no detections to review (videos only)")
        if job.status != DONE:
            raise HTTPException(409, f"the job is {job.status}; wait until it is done")
        source = next(folder.glob("input.*"), None)
        if source is None:
            raise HTTPException(410, "the original was deleted; the job can no longer be edited")
        return job, folder, source

    @app.get("/api/jobs/{job_id}/detections", summary="A video's detections and review marks")
    async def get_detections(job_id: str) -> dict:
        job, folder, source = reviewable(job_id)
        return await asyncio.to_thread(_overview, job, folder, source)

    @app.get("/api/jobs/{job_id}/frames/{index}", summary="One frame as JPEG, anonymized")
    async def get_frame(
        job_id: str, index: int, request: Request, original: bool = False
    ) -> Response:
        job, folder, source = reviewable(job_id)
        if original:
            _check_owner(request, job)
            log.warning("job %s: the original of frame %d was shown to its owner", job_id, index)
        data = await asyncio.to_thread(
            _frame_jpeg, job, folder, source, index, original, pool.base_options
        )
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    @app.post("/api/jobs/{job_id}/edits", summary="Correct the detections (saved at once)")
    async def post_edit(job_id: str, edit: Edit, request: Request) -> dict:
        job, folder, source = reviewable(job_id)
        lock = locks.setdefault(job_id, threading.Lock())
        who = _editor(request)
        return await asyncio.to_thread(_apply_edit, lock, folder, source, edit, who)

    @app.put("/api/jobs/{job_id}/detections", summary="Replace the detections (schema checked)")
    async def put_detections(job_id: str, rows: list[dict[str, Any]], request: Request) -> dict:
        _job, folder, _source = reviewable(job_id)
        rows = validate_rows(rows, "detections")
        with locks.setdefault(job_id, threading.Lock()):  # not under a concurrent edit
            write_rows(folder / DETECTIONS, rows)
            log_edit(folder, audit.Edit(audit.now(), _editor(request), "replace"))
        return {"boxes": len(rows)}

    @app.post(
        "/api/jobs/{job_id}/rerender",
        status_code=202,
        summary="Render a new version from the edited detections",
    )
    async def rerender(job_id: str) -> dict:
        reviewable(job_id)
        if not pool.rerender(job_id):
            raise HTTPException(409, "the job is busy; try again when it is done")
        return job_or_404(store, job_id).public()


def _overview(job: Job, folder: Path, source: Path) -> dict:
    rows = read_rows(folder / DETECTIONS)
    flagged: list[int] = []
    if job.review and (folder / job.review / "review.json").is_file():
        report = json.loads((folder / job.review / "review.json").read_text(encoding="utf-8"))
        flagged = [entry["frame"] for entry in report.get("review_frames", [])]
    with FrameReader(source) as reader:  # the size of the frames as shown (upright)
        count, fps, (height, width) = reader.count, reader.info.fps, reader.frame(0).image.shape[:2]
    return {
        "frames": count,
        "fps": float(fps),
        "width": width,
        "height": height,
        "flagged": flagged,
        "rows": rows,
        "tracks": editing.track_marks(rows),
        "versions": versions(folder, Path(job.output).suffix),
    }


def _frame_jpeg(
    job: Job, folder: Path, source: Path, index: int, original: bool, base: JobOptions
) -> bytes:
    with FrameReader(source) as reader:
        if not 0 <= index < reader.count:
            raise HTTPException(404, f"no frame {index}: the video has {reader.count} frames")
        image = reader.frame(index).image
    if not original:
        dets = detections_by_frame(read_rows(folder / DETECTIONS)).get(index, Detections.empty())
        options = job_options(job.options, job.kind, base)
        image = anon.apply(image, dets, options.anonymize)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise InputError(f"frame {index} could not be encoded")
    return data.tobytes()


def _check_owner(request: Request, job: Job) -> None:
    """Originals go only to the browser session that uploaded the video, or a token holder."""
    caller = caller_of(request.scope)
    if not (caller.token_holder or (job.owner and job.owner == caller.owner)):
        raise HTTPException(403, "only the browser session that uploaded it sees the original")


def _editor(request: Request) -> str:
    """Who made an edit, for the audit record: the label of the token used (`--token
    LABEL:SECRET`), or the browser session (by the hash its jobs are filed under, never the
    cookie itself)."""
    caller = caller_of(request.scope)
    return caller.label or f"browser session {caller.owner[:12]}"


def _apply_edit(lock: threading.Lock, folder: Path, source: Path, edit: Edit, who: str) -> dict:
    with lock:
        rows = read_rows(folder / DETECTIONS)
        track = edit.track_id
        if edit.op in ("add", "move") and (edit.box is None or edit.frame is None):
            raise HTTPException(422, f"{edit.op} needs frame and box")
        if edit.op != "add" and track is None:
            raise HTTPException(422, f"{edit.op} needs track_id")
        box = edit.box
        if box is not None and (box[2] <= box[0] or box[3] <= box[1]):
            raise HTTPException(422, "box must be [x1, y1, x2, y2] with x2 > x1 and y2 > y1")
        if edit.op == "add":
            with FrameReader(source) as reader:
                rows, track = editing.add_box(rows, reader, edit.frame, box)
        elif edit.op == "move":
            rows = editing.move_box(rows, edit.frame, track, box)
        elif edit.op == "delete":
            rows = editing.delete_track(rows, track)
        else:
            rows = editing.set_hidden(rows, track, edit.hide)
        write_rows(folder / DETECTIONS, rows)
        action = "keep" if edit.op == "hide" and not edit.hide else edit.op
        box = tuple(edit.box) if edit.box is not None else None
        log_edit(folder, audit.Edit(audit.now(), who, action, edit.frame, track, box))
    return {"track_id": track, "rows": rows, "tracks": editing.track_marks(rows)}
