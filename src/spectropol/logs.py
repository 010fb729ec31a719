"""Logging set-up for workflow jobs: everything goes to the job's log file."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator

from .errors import SpectropolError
from .identity import set_run_identity

log = logging.getLogger("spectropol")


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far (MB): the kernel's high-water mark of its address
    space (VmHWM). Not getrusage's ru_maxrss, which on Linux survives fork and execve: a job that
    Snakemake starts would report Snakemake's own size whenever that is larger (every split and
    image job of a 256-channel run reported the same 557 MB)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    import resource  # elsewhere (macOS): the best the system offers, in bytes there

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024.0**2 if sys.platform == "darwin" else 1024.0)


@contextlib.contextmanager
def to_file(path: str, run: dict | None = None) -> Iterator[logging.Logger]:
    """Send the library's log records to ``path``; turn our errors into one line and exit 1. ``run``
    is the run's identity (the config's ``run``), which the products the job writes record.

    A SpectropolError is the user's to fix, so it is printed as one line (to the log and to stderr,
    which Snakemake shows) without a traceback; so are the library's warnings. Anything else is a
    bug and keeps its traceback.
    """
    set_run_identity(run)
    handler = logging.FileHandler(path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    # Our warnings (a field cut at the horizon, a CLEAN stopped at its best model) are for the
    # user: one line each on stderr too, which Snakemake shows.
    warnings = logging.StreamHandler(sys.stderr)
    warnings.addFilter(lambda record: record.levelno == logging.WARNING)  # errors get their own line below
    warnings.setFormatter(logging.Formatter("spectropol: warning: %(message)s"))
    log.addHandler(warnings)
    logging.captureWarnings(True)
    start = time.perf_counter()
    try:
        yield log
    except SpectropolError as err:
        log.error("%s", err)
        print(f"spectropol: error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        log.info("finished in %.2f s, peak memory %.0f MB", time.perf_counter() - start, peak_memory_mb())
        root.removeHandler(handler)
        log.removeHandler(warnings)
        handler.close()
