"""The peak memory a job logs (what benchmarks/imaging.py and the memory requests are judged by) is
the job's own, not that of the process that started it."""

import re
import subprocess
import sys

import numpy as np

JOB = """
import sys
from spectropol.logs import to_file
with to_file(sys.argv[1]):
    pass
"""


def test_a_job_logs_its_own_peak_memory_not_its_parents(tmp_path):
    held = np.ones(400 * 2**20 // 8)  # the parent (Snakemake, say) holds 400 MB when it starts the job
    held[::512] = 2.0
    subprocess.run([sys.executable, "-c", JOB, str(tmp_path / "job.log")], check=True)
    logged = float(re.search(r"peak memory (\d+) MB", (tmp_path / "job.log").read_text()).group(1))
    assert 10 < logged < 200, logged  # the interpreter and numpy: about 30-60 MB
    del held
