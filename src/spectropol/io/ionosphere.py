"""Ionospheric Faraday rotation tables: RM against time, as the split stage derotates by them."""

from __future__ import annotations

import os

import numpy as np

from ..errors import fail


def read_ionosphere_rm(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """A table of ionospheric rotation measure against time: CSV with a header line and columns
    time (MJD seconds, as the MS TIME column) and RM (rad/m^2), times increasing."""
    try:
        table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2, dtype=np.float64)
    except OSError:
        raise fail(path, "ionospheric RM table not found") from None
    except ValueError as err:
        raise fail(path, f"ionospheric RM table is not two numeric CSV columns time_mjd_s,rm_rad_m2 ({err})") from None
    if table.shape[1] != 2 or len(table) == 0 or not np.all(np.isfinite(table)) or np.any(np.diff(table[:, 0]) <= 0):
        raise fail(path, "ionospheric RM table needs rows of time_mjd_s,rm_rad_m2 with increasing, finite times")
    return table[:, 0], table[:, 1]
