"""Where batch items run: a local process pool or tasks on a Ray cluster.

Both call work.process_item on each item and hand back Outcomes as they
finish. Only as many items as there are workers are in flight at once, so a
worker that dies takes down only the items it was running: those are retried
once on a fresh pool, then reported as failed.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from ..errors import OptionError
from .storage import MissingExtra
from .work import Outcome, WorkItem, process_item

ENGINES = ("local", "ray")
CRASHES_BEFORE_FAILED = 2
WORKER_DIED = "the worker process died while processing this file (out of memory or killed)"


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
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
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
                        yield future.result()
                    except BrokenProcessPool:
                        broken = True
                        crashes[_identity(item)] += 1
                        if crashes[_identity(item)] >= CRASHES_BEFORE_FAILED:
                            yield _died(item)
                        else:
                            todo.append(item)
                if broken:  # every item still on the pool went down with it
                    for item in running.values():
                        crashes[_identity(item)] += 1
                        if crashes[_identity(item)] >= CRASHES_BEFORE_FAILED:
                            yield _died(item)
                        else:
                            todo.append(item)
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


def _identity(item: WorkItem) -> tuple:
    return item.key, item.segment.index if item.segment is not None else None


def _died(item: WorkItem, detail: str = "") -> Outcome:
    return Outcome(item.key, False, error=WORKER_DIED + detail, part=_identity(item)[1])


def _interrupt_workers() -> None:
    """Ctrl-C: let each worker unwind (its partial output is deleted) instead of leaving it running."""
    for child in multiprocessing.active_children():
        try:
            os.kill(child.pid, signal.SIGINT)
        except (ProcessLookupError, TypeError):
            pass


def ray_outcomes(
    items: Sequence[WorkItem], address: str | None, cpus_per_task: int
) -> Iterator[Outcome]:
    """Run items as Ray tasks, on the cluster this process is connected to or the one at `address`."""
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
    # Two tasks per slot keep every CPU busy while results travel back; the rest waits here, not in Ray.
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
