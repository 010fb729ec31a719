"""The parallactic angle of alt-az mounted feeds: how far they rotate on the sky, which turns the
polarisation angle they measure, chi_measured = chi_sky - (parallactic angle + receptor angle),
that is (Q + iU)_measured = (Q + iU)_sky exp(-2i chi_feed).

Greenwich mean sidereal time from UTC (Meeus 1998, eq. 12.4; UT1 - UTC, below 0.9 s, is neglected:
0.004 deg at most), hour angle H = GMST + longitude - RA, and
q = atan2(sin H cos(lat), sin(lat) cos(dec) - cos(lat) sin(dec) cos H).
"""

from __future__ import annotations

import numpy as np

MJD_J2000_DAYS = 51544.5  # J2000.0 = JD 2451545.0


def gmst_rad(mjd_utc_s: np.ndarray) -> np.ndarray:
    """Greenwich mean sidereal time (rad) at MJD seconds (UTC, as an MS's TIME column)."""
    d = np.asarray(mjd_utc_s, dtype=np.float64) / 86400.0 - MJD_J2000_DAYS
    t = d / 36525.0
    degrees = 280.46061837 + 360.98564736629 * d + 0.000387933 * t**2 - t**3 / 38710000.0
    return np.deg2rad(degrees % 360.0)


def parallactic_angle(hour_angle_rad: np.ndarray, dec_rad: float, latitude_rad: np.ndarray) -> np.ndarray:
    """Parallactic angle (rad, from north through east) of a direction at hour angle H."""
    h = np.asarray(hour_angle_rad)
    lat = np.asarray(latitude_rad)
    return np.arctan2(np.sin(h) * np.cos(lat),
                      np.sin(lat) * np.cos(dec_rad) - np.cos(lat) * np.sin(dec_rad) * np.cos(h))


def feed_angles(time_mjd_s: np.ndarray, ra_rad: float, dec_rad: float, longitude_rad: np.ndarray,
                latitude_rad: np.ndarray, receptor_angle_rad: np.ndarray) -> np.ndarray:
    """(ntime, nant) angle (rad) of each antenna's first receptor on the sky at each time."""
    gmst = gmst_rad(time_mjd_s)[:, None]
    hour_angle = gmst + np.asarray(longitude_rad)[None, :] - ra_rad
    return parallactic_angle(hour_angle, dec_rad, np.asarray(latitude_rad)[None, :]) + np.asarray(receptor_angle_rad)
