"""Where batch items run: a local process pool or tasks on a Ray cluster.

Both call work.process_item on each item and hand back Outcomes as they
finish. Only as many items as there are workers are in flight at once, so a
worker that dies takes down only the items it was running: those are retried
once on a fresh pool, then reported as failed. A local worker never outlives
the driver: when the driver dies, even by SIGKILL, its workers stop too.
"""

from __future__ import annotations

import _thread
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from ..errors import OptionError
from ..heap import share_heaps
from .storage import MissingExtra
from .work import OUT_OF_MEMORY, Outcome, WorkItem, process_item

ENGINES = ("local", "ray")
CRASHES_BEFORE_FAILED = 2
WORKER_DIED = "the worker process died while processing this file (out of memory or killed)"
# Seconds a worker whose driver died has to delete the partial output of the file in hand.
ORPHAN_GRACE = 5.0


def local_outcomes(
    items: Sequence[WorkItem], workers: int, after_crash: Callable[[], None] | None = None
) -> Iterator[Outcome]:
    """Run items on `workers` spawned processes (spawn: no inherited threads or inference state).

    after_crash runs once a broken pool's workers are all gone, before a fresh pool starts:
    the place to delete what they left half-written.
    """
    todo = list(reversed(items))
    crashes: Counter[tuple] = Counter()
    context = multiprocessing.get_context("spawn")
    while todo:
        pool = ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=_start_worker
        )
        running: dict[Future, WorkItem] = {}
        try:
            while todo or running:
                while todo and len(running) < workers:
                    item = todo.pop()
                    running[pool.submit(process_item, item)] = item
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                broken = False
                for future in done:
                    item = running.pop(future)
                    try:
                        yield _result(future, item)
                    except BrokenProcessPool:
                        broken = True
                        yield from _crashed(item, crashes, todo)
                if broken:  # every item still on the pool went down with it
                    for item in running.values():
                        yield from _crashed(item, crashes, todo)
                    running.clear()
                    pool.shutdown(wait=True)
                    if after_crash is not None:
                        after_crash()
                    break
        except BaseException:
            _interrupt_workers()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True, cancel_futures=True)


def _start_worker() -> None:
    """Runs first in each local worker: Ctrl-C stops it once, and it stops with the driver."""
    share_heaps()
    signal.signal(signal.SIGINT, _interrupt_once)
    _leave_with_parent()


def _interrupt_once(signum: int, frame: object) -> None:
    """The first SIGINT interrupts the file in hand; later ones are ignored, so they cannot cut
    short the deletion of its partial output. Ctrl-C reaches a worker twice: from the terminal
    (the whole process group) and from the driver (_interrupt_workers), a few milliseconds
    apart, while the worker is still unwinding from the first."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def _leave_with_parent() -> None:
    """Once the driver is gone (killed, even by SIGKILL), stop.

    The file in hand is interrupted as by Ctrl-C, so its partial output is deleted; a worker
    stuck in native code is ended after ORPHAN_GRACE seconds. Its messages are dropped, as
    nothing reads them any more. The sentinel is a pipe the driver holds open while it lives.
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        _thread.interrupt_main()
        threading.Event().wait(ORPHAN_GRACE)
        os._exit(1)

    threading.Thread(target=watch, name="veil-parent-watch", daemon=True).start()


def _result(future: Future, item: WorkItem) -> Outcome:
    try:
        return future.result()
    except MemoryError:  # the worker ran out again while it reported the first MemoryError
        return Outcome(item.key, False, error=OUT_OF_MEMORY, part=item_part(item))


def _crashed(item: WorkItem, crashes: Counter[tuple], todo: list[WorkItem]) -> Iterator[Outcome]:
    """An item whose worker died: back on the list, or failed once it took a worker down twice."""
    crashes[_identity(item)] += 1
    if crashes[_identity(item)] >= CRASHES_BEFORE_FAILED:
        yield _died(item)
    else:
        todo.append(item)


def item_part(item: WorkItem) -> int | None:
    return item.segment.index if item.segment is not None else None


def _identity(item: WorkItem) -> tuple:
    return item.key, item_part(item)


def _died(item: WorkItem, detail: str = "") -> Outcome:
    return Outcome(item.key, False, error=WORKER_DIED + detail, part=item_part(item))


def _interrupt_workers() -> None:
    """Ctrl-C: let each worker unwind (its partial output is deleted) rather than run on."""
    for child in multiprocessing.active_children():
        try:
            os.kill(child.pid, signal.SIGINT)
        except (ProcessLookupError, TypeError):
            pass


def ray_outcomes(
    items: Sequence[WorkItem], address: str | None, cpus_per_task: int
) -> Iterator[Outcome]:
    """Run items as Ray tasks, on the cluster this process is connected to or at `address`."""
    try:
        import ray
    except ImportError:
        raise MissingExtra("--engine ray needs Ray: pip install 'veil[ray]'") from None
    if not ray.is_initialized():
        import veil

        try:
            ray.init(address=address, runtime_env={"py_modules": [veil]}, log_to_driver=False)
        except ConnectionError as exc:
            raise OptionError(
                f"cannot reach the Ray cluster at {address or 'the default address'} ({exc})"
            ) from None
    task = ray.remote(num_cpus=cpus_per_task, max_retries=CRASHES_BEFORE_FAILED - 1)(process_item)
    # Two tasks per slot keep every CPU busy while results travel back; the rest waits here,
    # not in Ray.
    slots = 2 * max(1, int(ray.cluster_resources().get("CPU", 1) // cpus_per_task))
    todo = list(reversed(items))
    running: dict = {}
    try:
        while todo or running:
            while todo and len(running) < slots:
                item = todo.pop()
                running[task.remote(item)] = item
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                item = running.pop(ref)
                try:
                    yield ray.get(ref)
                except ray.exceptions.RayError as exc:
                    yield _died(item, f" ({type(exc).__name__})")
    except BaseException:
        for ref in running:
            ray.cancel(ref)
        raise


def worker_threads(requested: int, workers: int) -> int:
    """Inference threads per worker: what was asked, else the cores shared out."""
    if requested:
        return requested
    return max(1, (os.cpu_count() or 1) // workers)
