"""spectropol: spectropolarimetric imaging and Faraday rotation, from Measurement Set to catalogue."""

import os

__version__ = "0.1.0"  # the package's version (pyproject.toml reads it from here)


def without_huge_page_advice() -> None:
    """Turn off NumPy's transparent-huge-page advice for this process, unless the user set it
    (NUMPY_MADVISE_HUGEPAGE); NumPy reads the variable when first imported, so this is called
    before that, by the Faraday stage's script and commands.

    NumPy madvises huge pages for every array of 4 MB or more. Where the kernel's policy is
    "madvise" with synchronous defragmentation, as on the machines we measured, a first touch may
    wait while the kernel compacts memory: `spectropol faraday-depth --no-clean` on benchmarks/
    faraday.py's 64-channel 512^2 FITS input spent 0.6-1.3 s of system time in 1.8-2.1 s with the
    advice, 0.3 s in 1.5-1.6 s without; from a 64-channel cube store with RM-CLEAN, 7.2-8.0 s with,
    6.7-7.1 s without. Left as NumPy has it elsewhere: not measured there."""
    os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")
