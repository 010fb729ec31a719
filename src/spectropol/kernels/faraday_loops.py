"""The per-spectrum and per-pixel loops of the Faraday-depth kernels, compiled with numba: RM-CLEAN's
Hogbom loop with the restoring step, and the weighted moments of each pixel's spectrum.

RM-CLEAN walks one Faraday dispersion function (a row of an (npix, nphi) array: a few kB, in cache)
at a time. Written with numpy instead, each RM-CLEAN iteration of a tile is half a dozen passes over
arrays of the whole tile (|F|, argmax, the gather of shifted RMSFs, the subtraction), each larger
than the cache: 8.6 times slower on a 128^2-pixel tile of 401 depths. Here the subtraction of a
component and the search for the next peak are one pass over a spectrum held as separate real and
imaginary parts, which the compiler turns into vector instructions.

The functions release the GIL, so Dask's threads run tiles side by side; ``cache=True`` keeps the
compiled code beside this file (or in numba's user cache where the package is read-only), so a job
compiles nothing after the first.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(nogil=True, cache=True, fastmath=True)
def hogbom_rows(res_re, res_im, components, clean, rmsf_re, rmsf_im, restore, cutoff, gain, max_iter):
    """RM-CLEAN (Heald et al. 2009) of each row of ``res_re + i res_im`` (n, nphi), in place.

    Per row: while |residual| at its peak reaches ``cutoff[row]`` and fewer than ``max_iter``
    iterations ran, add gain x peak to ``components`` at that depth and subtract the RMSF
    (``rmsf_*`` on twice the depth range, centre at nphi - 1) shifted there. ``clean`` then receives
    the residual plus the components convolved with ``restore`` (a Gaussian on twice the range,
    centre at nphi - 1): only the depths that hold components cost anything. Returns the iterations
    of each row. The rows must be finite (fastmath assumes no NaN)."""
    n, nphi = res_re.shape
    iterations = np.zeros(n, np.int32)
    for r in range(n):
        rr = res_re[r]
        ri = res_im[r]
        limit = cutoff[r] * cutoff[r]
        best = 0
        best_power = np.float32(-1.0)
        for j in range(nphi):
            power = rr[j] * rr[j] + ri[j] * ri[j]
            if power > best_power:
                best_power = power
                best = j
        done = 0
        while done < max_iter and best_power >= limit and best_power > 0:
            c_re = gain * rr[best]
            c_im = gain * ri[best]
            components[r, best] += complex(c_re, c_im)
            base = nphi - 1 - best
            best_power = np.float32(-1.0)
            following = 0
            # subtract the shifted RMSF and find the next peak in the same pass
            for j in range(nphi):
                a = rmsf_re[base + j]
                b = rmsf_im[base + j]
                x = rr[j] - (c_re * a - c_im * b)
                y = ri[j] - (c_re * b + c_im * a)
                rr[j] = x
                ri[j] = y
                power = x * x + y * y
                if power > best_power:
                    best_power = power
                    following = j
            best = following
            done += 1
        iterations[r] = done
        for j in range(nphi):
            clean[r, j] = complex(rr[j], ri[j])
        for k in range(nphi):
            c = components[r, k]
            if c.real != 0 or c.imag != 0:
                base = nphi - 1 - k
                for j in range(nphi):
                    clean[r, j] += c * restore[base + j]
    return iterations


@numba.njit(nogil=True, cache=True)
def moments_rows(values, weights, out):
    """Weighted mean, standard deviation, skewness and excess kurtosis along the first axis of
    ``values`` (nchan, npix), NaN values ignored pixel by pixel, into ``out`` (4, npix): population
    moments (scipy.stats with bias=True), accumulated in double precision, two passes over the
    channels (the mean first) with the pixels innermost, where the data are contiguous. A pixel
    without data is NaN; a constant one has NaN skewness and kurtosis."""
    nchan, npix = values.shape
    total = np.zeros(npix)
    first = np.zeros(npix)
    for c in range(nchan):
        w = weights[c]
        if w == 0:
            continue
        for p in range(npix):
            x = values[c, p]
            if np.isfinite(x):
                total[p] += w
                first[p] += w * x
    mean = np.empty(npix)
    for p in range(npix):
        mean[p] = first[p] / total[p] if total[p] > 0 else np.nan
    m2 = np.zeros(npix)
    m3 = np.zeros(npix)
    m4 = np.zeros(npix)
    for c in range(nchan):
        w = weights[c]
        if w == 0:
            continue
        for p in range(npix):
            x = values[c, p]
            if np.isfinite(x):
                d = x - mean[p]
                d2 = d * d
                m2[p] += w * d2
                m3[p] += w * d2 * d
                m4[p] += w * d2 * d2
    for p in range(npix):
        if total[p] > 0:
            v2 = m2[p] / total[p]
            out[0, p] = mean[p]
            out[1, p] = np.sqrt(v2)
            if v2 > 0:
                out[2, p] = m3[p] / total[p] / v2**1.5
                out[3, p] = m4[p] / total[p] / (v2 * v2) - 3.0
            else:
                out[2, p] = np.nan
                out[3, p] = np.nan
        else:
            for k in range(4):
                out[k, p] = np.nan


_WARM_UP: dict[str, object] = {}  # loop name -> the thread loading it


def warm_up(*loops: str) -> None:
    """Load the compiled ``loops`` ("hogbom_rows", "moments_rows"; both if none are named) for the
    arrays the Faraday stage passes (numba's first call in a process costs about 0.45 s, mostly its
    own start), in a thread of its own, so that a stage can do it while it reads its input. A loop
    already loading is not loaded again; wait_warm() waits for them."""
    import threading

    examples = {
        "hogbom_rows": lambda real, rows, small: hogbom_rows(real, real.copy(), rows.copy(), rows.copy(), small, small,
                                                             small, np.zeros(1, np.float32), np.float32(0.1), 1),
        "moments_rows": lambda real, rows, small: moments_rows(real, np.ones(1), np.empty((4, 3))),
    }
    wanted = [name for name in (loops or tuple(examples)) if name not in _WARM_UP]
    if not wanted:
        return

    def run():
        real = np.zeros((1, 3), np.float32)
        for name in wanted:
            examples[name](real, np.zeros((1, 3), np.complex64), np.zeros(5, np.float32))

    thread = threading.Thread(target=run, name="numba-warm-up", daemon=True)
    thread.start()
    _WARM_UP.update(dict.fromkeys(wanted, thread))


def wait_warm() -> None:
    """Wait for warm_up, if it was started."""
    for thread in set(_WARM_UP.values()):
        thread.join()
