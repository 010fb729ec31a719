"""Stokes parameters from feed correlations, in either feed basis and any correlation order.

Conventions are those of the IAU and of CASA/WSClean for an ideal receiver with the parallactic
angle already removed (Hamaker & Bregman 1996):

    linear:   XX = I + Q,  YY = I - Q,  XY = U + iV,  YX = U - iV
    circular: RR = I + V,  LL = I - V,  RL = Q + iU,  LR = Q - iU
"""

from __future__ import annotations

import numpy as np

from ..constants import STOKES

# casacore Stokes enumeration (casacore/measures/Measures/Stokes.h), as stored in CORR_TYPE.
CORR_CODES = {5: "RR", 6: "RL", 7: "LR", 8: "LL", 9: "XX", 10: "XY", 11: "YX", 12: "YY"}
CORR_NUMBERS = {name: code for code, name in CORR_CODES.items()}

# Each Stokes parameter as a linear combination of correlations: {stokes: {corr: coefficient}}.
_FROM_CORRELATIONS = {
    "linear": {
        "I": {"XX": 0.5, "YY": 0.5},
        "Q": {"XX": 0.5, "YY": -0.5},
        "U": {"XY": 0.5, "YX": 0.5},
        "V": {"XY": -0.5j, "YX": 0.5j},
    },
    "circular": {
        "I": {"RR": 0.5, "LL": 0.5},
        "V": {"RR": 0.5, "LL": -0.5},
        "Q": {"RL": 0.5, "LR": 0.5},
        "U": {"RL": -0.5j, "LR": 0.5j},
    },
}
_TO_CORRELATIONS = {
    "linear": {
        "XX": {"I": 1, "Q": 1},
        "YY": {"I": 1, "Q": -1},
        "XY": {"U": 1, "V": 1j},
        "YX": {"U": 1, "V": -1j},
    },
    "circular": {
        "RR": {"I": 1, "V": 1},
        "LL": {"I": 1, "V": -1},
        "RL": {"Q": 1, "U": 1j},
        "LR": {"Q": 1, "U": -1j},
    },
}


def feed_basis(corr_names: list[str] | tuple[str, ...]) -> str:
    """'linear' or 'circular' from correlation names; ValueError for a mixture or an unknown one."""
    letters = {c for name in corr_names for c in name}
    if letters and letters <= {"X", "Y"}:
        return "linear"
    if letters and letters <= {"R", "L"}:
        return "circular"
    raise ValueError(f"correlations {list(corr_names)} are neither all linear (X, Y) nor all circular (R, L)")


def stokes_matrix(corr_names: list[str] | tuple[str, ...]) -> tuple[np.ndarray, tuple[str, ...]]:
    """Matrix M (nstokes, ncorr) with stokes = M @ correlations, and the Stokes labels it can form.

    A Stokes parameter is formed only when every correlation it needs is present: XX and YY alone
    give I and Q; the cross-hands add U and V.
    """
    basis = feed_basis(corr_names)
    index = {name: k for k, name in enumerate(corr_names)}
    rows, labels = [], []
    for label in STOKES:
        combination = _FROM_CORRELATIONS[basis][label]
        if all(corr in index for corr in combination):
            row = np.zeros(len(corr_names), dtype=np.complex64)
            for corr, coefficient in combination.items():
                row[index[corr]] = coefficient
            rows.append(row)
            labels.append(label)
    return np.array(rows), tuple(labels)


def stokes_from_correlations(
    vis: np.ndarray, flags: np.ndarray, weights: np.ndarray, corr_names: list[str] | tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Stokes visibilities and weights from correlations along the last axis.

    vis: complex (..., ncorr); flags: bool (..., ncorr); weights: float (..., ncorr), the inverse
    variance of each correlation. Returns complex64 (..., nstokes), float32 weights (..., nstokes)
    that are the inverse variance of each Stokes visibility and zero where any correlation it uses
    is flagged, non-finite or has no positive weight, and the Stokes labels.
    """
    matrix, labels = stokes_matrix(corr_names)
    bad = flags | ~np.isfinite(vis) | ~(weights > 0) | ~np.isfinite(weights)
    clean_vis = np.where(bad, 0, vis).astype(np.complex64)
    stokes_vis = clean_vis @ matrix.T
    # var(sum c_k V_k) = sum |c_k|^2 var(V_k) for independent correlations.
    # Bad correlations get zero variance here; the Stokes values they feed are flagged below.
    variance = np.where(bad, 0.0, 1.0 / np.where(bad, 1.0, weights))
    stokes_var = variance @ (np.abs(matrix) ** 2).T.astype(np.float64)
    stokes_bad = bad.astype(np.float32) @ (np.abs(matrix) > 0).T.astype(np.float32) > 0
    stokes_weight = np.where(stokes_bad, 0.0, 1.0 / np.where(stokes_bad, 1.0, stokes_var)).astype(np.float32)
    stokes_vis = np.where(stokes_bad, 0, stokes_vis).astype(np.complex64)
    return stokes_vis, stokes_weight, labels


def correlations_from_stokes(stokes: dict[str, np.ndarray], corr_names: list[str] | tuple[str, ...]) -> np.ndarray:
    """Correlations (..., ncorr) in the order given, from Stokes visibilities {'I': ..., ...}."""
    basis = feed_basis(corr_names)
    shape = np.broadcast(*stokes.values()).shape
    out = np.zeros(shape + (len(corr_names),), dtype=np.complex128)
    for k, corr in enumerate(corr_names):
        for label, coefficient in _TO_CORRELATIONS[basis][corr].items():
            out[..., k] += coefficient * stokes.get(label, 0)
    return out


def rotate_linear_polarisation(q: np.ndarray, u: np.ndarray, angle_rad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q, U rotated by -angle: the polarisation angle of Q + iU decreases by ``angle_rad``.

    Works on complex Stokes visibilities as on real images: Q' = Q cos 2a + U sin 2a,
    U' = -Q sin 2a + U cos 2a. Undoes a Faraday rotation of angle RM lambda^2.
    """
    c, s = np.cos(2 * angle_rad), np.sin(2 * angle_rad)
    return q * c + u * s, -q * s + u * c
