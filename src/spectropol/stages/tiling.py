"""The skeleton of the array stages (moments, RM synthesis, RM-CLEAN, peaks): Dask over spatial
tiles that each hold the whole spectral (or Faraday-depth) axis, so that memory per task is set by
``chunk_mb`` and never by the number of channels; the scheduler the config asks for, with progress
in the job's log; the product written atomically, then its QA document."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..io.stores import write_dataset
from ..options import DaskOptions
from ..qa.documents import write_qa

if TYPE_CHECKING:
    import dask.array

log = logging.getLogger(__name__)


class _ProgressLog:
    """A Dask local-scheduler callback that logs progress every ``every_s`` seconds."""

    def __init__(self, label: str, every_s: float = 10.0):
        from dask.callbacks import Callback

        outer = self

        class _Callback(Callback):
            def _start_state(self, dsk, state):
                outer.total = sum(len(state[k]) for k in ("ready", "waiting", "running"))
                outer.done = 0
                outer.last = time.monotonic()
                log.info("%s: %d tasks", label, outer.total)

            def _posttask(self, key, result, dsk, state, worker_id):
                outer.done += 1
                now = time.monotonic()
                if now - outer.last >= every_s:
                    outer.last = now
                    log.info("%s: %d of %d tasks done (%.0f%%)", label, outer.done, outer.total,
                             100.0 * outer.done / max(outer.total, 1))

            def _finish(self, dsk, state, errored):
                log.info("%s: %d tasks finished%s", label, outer.done, " with an error" if errored else "")

        self.callback = _Callback()


@contextlib.contextmanager
def dask_scheduler(scheduler: str = "threads", nthreads: int = 1, label: str = "dask") -> Iterator[None]:
    """Use ``scheduler`` for dask computations in this block: 'threads', 'processes', 'synchronous',
    or the address of a running dask.distributed scheduler (tcp://host:port)."""
    import dask

    if "://" in scheduler:
        from distributed import Client

        with Client(scheduler) as client:
            log.info("%s: on the Dask cluster at %s (%s)", label, scheduler, client.dashboard_link)
            yield
        return
    if scheduler not in ("threads", "processes", "synchronous"):
        raise ValueError(f"unknown Dask scheduler {scheduler!r} (threads, processes, synchronous or tcp://address)")
    import dask.local
    import dask.multiprocessing
    import dask.threaded

    # The function itself, not its name: given a name, dask imports distributed on every compute
    # to look for a client (0.3 s a stage here).
    get = {"threads": dask.threaded.get, "processes": dask.multiprocessing.get, "synchronous": dask.local.get_sync}
    progress = _ProgressLog(label)
    with dask.config.set(scheduler=get[scheduler], num_workers=nthreads), progress.callback:
        yield


def limit_heap_growth(threshold_bytes: int = 4 << 20) -> None:
    """Have glibc's malloc give arrays above ``threshold_bytes`` their own memory maps, returned to
    the system when freed. By default the threshold rises to 32 MB as large arrays are freed, after
    which a loop that allocates arrays of changing sizes (RM-CLEAN's shrinking sets of live pixels)
    fragments the heap: faraday_depth on a 1024^2 cube peaked at 999 MB with this unset and at
    491 MB, flat over its 256 tiles, with it (tiles of 187 MB, two threads). No effect elsewhere."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = getattr(libc, "mallopt", None)
    except OSError:
        mallopt = None
    if mallopt is not None:
        mallopt(-3, int(threshold_bytes))  # M_MMAP_THRESHOLD (malloc.h); a fixed value also stops its growth


def tile_side(npix_y: int, npix_x: int, bytes_per_pixel: float, chunk_mb: float, align: int | None = None) -> int:
    """Side of a square spatial tile of about chunk_mb for an array stage; with ``align`` (the stored
    chunk), a divisor or multiple of it, so that each task reads whole stored chunks."""
    side = max(8, min(max(npix_y, npix_x), int(np.sqrt(chunk_mb * 1e6 / bytes_per_pixel))))
    if align:
        if side >= align:
            side = side // align * align
        else:
            while align > 8 and align > side:
                align //= 2
            side = align
    return side


def map_tiles(function: Callable, arrays: Sequence, side: int, leading: tuple[int, ...], dtype) -> dask.array.Array:
    """``function`` over square spatial tiles of ``side`` pixels of ``arrays`` (each (n, y, x), the
    whole first axis in every tile); each call returns ``leading`` + the tile's (y, x) shape."""
    import dask.array as da

    tiles = [a.rechunk((a.shape[0], side, side)) for a in arrays]
    chunks = tuple((n,) for n in leading) + tiles[0].chunks[1:]
    return da.map_blocks(function, *tiles, dtype=dtype, chunks=chunks, drop_axis=0, new_axis=list(range(len(leading))))


def write_array_product(dataset, out_store: str | os.PathLike, qa_path: str | os.PathLike, summarise: Callable,
                        *, kind: str, rule: str, dask: DaskOptions, label: str, encoding: dict | None = None):
    """Compute ``dataset`` (dask-backed) under the configured scheduler into ``out_store``
    atomically, then write the QA document of ``summarise(out_store)``, a stage's result; return it."""
    with dask_scheduler(dask.scheduler, dask.threads, label):
        write_dataset(dataset, out_store, encoding)
    result = summarise(out_store)
    write_qa(qa_path, kind, result, rule)
    return result
