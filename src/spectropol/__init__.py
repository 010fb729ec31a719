"""spectropol: spectropolarimetric imaging and Faraday rotation, from Measurement Set to catalogue."""

import os

__version__ = "0.1.0"  # the package's version (pyproject.toml reads it from here)

# NumPy asks the kernel for transparent huge pages on every array of 4 MB or more (madvise). Where
# the kernel's policy is "madvise" with synchronous defragmentation, as on the machines we measured,
# the first touch of such an array waits while the kernel compacts memory: a 64-channel 512^2
# Faraday pass spent 0.6-1.3 s of system time in 1.8-2.1 s with it, 0.3 s in 1.5-1.6 s without
# (benchmarks/faraday.py's input, `spectropol faraday-depth --no-clean`). NumPy reads the variable
# when it is first imported, which in our jobs and the console script is after this line; a value
# the user set is kept.
os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")
