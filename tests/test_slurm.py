"""The workflow through a real one-node SLURM cluster (tools/slurm-cluster.sh), with the profile
users run: jobs are really submitted, a job killed by the scheduler is retried, and the products
equal those of the local run."""

import os
import re
import subprocess
import threading
import time

import numpy as np
import pytest

from conftest import REPO, run_snakemake

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

SLURMCTLD_LOG = "/var/spool/spectropol-slurm/slurmctld.log"


@pytest.fixture(scope="module")
def slurm_cluster():
    if os.geteuid() != 0:
        pytest.skip("starting a SLURM cluster needs root (tools/slurm-cluster.sh)")
    started = subprocess.run([str(REPO / "tools/slurm-cluster.sh"), "start"], capture_output=True, text=True)
    if started.returncode != 0:
        pytest.skip(f"could not start SLURM: {started.stderr.strip()[-300:]}")
    yield
    subprocess.run([str(REPO / "tools/slurm-cluster.sh"), "stop"], capture_output=True)


def submissions_since(offset: int) -> list[int]:
    """Job ids submitted according to slurmctld's log after byte ``offset`` (ids restart when the
    controller's state is reset, so they are counted by position in the log, not by value)."""
    with open(SLURMCTLD_LOG) as handle:
        handle.seek(offset)
        return [int(m) for m in re.findall(r"_slurm_rpc_submit_batch_job: JobId=(\d+)", handle.read())]


def cancel_one_running(rule: str, cancelled: list, stop: threading.Event) -> None:
    """Cancel the first running job of ``rule`` (as a node failure would end it), once."""
    while not stop.is_set() and not cancelled:
        out = subprocess.run(["squeue", "-h", "-o", "%i|%T|%k"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            job, state, comment = line.split("|", 2)
            if state == "RUNNING" and rule in comment:
                subprocess.run(["scancel", job], check=True)
                cancelled.append(job)
                return
        time.sleep(0.2)


def test_workflow_through_slurm_equals_the_local_run(slurm_cluster, tiny_run, tmp_path):
    import xarray as xr

    offset = os.path.getsize(SLURMCTLD_LOG)
    cancelled, stop = [], threading.Event()
    # a group job is named after its group and rules (..._image_channel_split_channel)
    watcher = threading.Thread(target=cancel_one_running, args=("image_channel", cancelled, stop), daemon=True)
    watcher.start()
    # 8 blocks of 2 channels, each block's split and image one component of the channel_block group,
    # 3 components a submission: 16 jobs in 3 sbatch calls
    (tmp_path / "blocks.yaml").write_text("channels:\n  block: 2\n")
    blocks, per_submission = 8, 3
    result = run_snakemake(
        tmp_path, "--profile", str(REPO / "profiles/slurm"), "--configfile", str(REPO / "tests/configs/tiny.yaml"),
        str(tmp_path / "blocks.yaml"), "--group-components", f"channel_block={per_submission}",
        "--latency-wait", "5", "--seconds-between-status-checks", "2", "--slurm-init-seconds-before-status-checks", "1",
    )
    stop.set()
    watcher.join()
    text = result.stdout + result.stderr
    steps = int(re.search(r"(\d+) of \1 steps \(100%\) done", text).group(1))
    local = 1  # rule all runs in the Snakemake process
    new_jobs = submissions_since(offset)
    assert cancelled, "no image_channel job was seen running to cancel"
    assert len(list((tmp_path / "results/channels").iterdir())) == blocks
    grouped = 2 * blocks
    group_submissions = -(-blocks // per_submission)
    # every other non-local job went through sbatch alone, the grouped ones 3 to a submission, and
    # the cancelled one twice
    assert len(new_jobs) == steps - local - grouped + group_submissions + len(cancelled)

    ours = xr.open_zarr(tmp_path / "results/cube/cube.zarr")["restored"].values
    local_cube = xr.open_zarr(tiny_run / "results/cube/cube.zarr")["restored"].values
    np.testing.assert_allclose(ours, local_cube, rtol=1e-6, atol=1e-7)
    peaks = xr.open_zarr(tmp_path / "results/faraday/peaks.zarr")["peak_phi"].values
    np.testing.assert_allclose(peaks, xr.open_zarr(tiny_run / "results/faraday/peaks.zarr")["peak_phi"].values,
                               rtol=1e-6)
