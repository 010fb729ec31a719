"""Faraday depth: RM synthesis (Brentjens & de Bruyn 2005, A&A 441, 1217), RM-CLEAN (Heald et al.
2009, A&A 503, 409) and the peak of the Faraday dispersion function (FDF), on 1-D spectra and on
(channel, pixel) blocks of a cube.

Conventions follow RM-Tools (Purcell et al. 2020), so that numbers can be compared:

    F(phi) = K sum_i w_i P_i exp(-2 i phi (lambda_i^2 - lambda0^2)),  K = 1 / sum_i w_i
    lambda0^2 = sum w_i lambda_i^2 / sum w_i
    RMSF FWHM = 3.8 / (lambda_max^2 - lambda_min^2)            (Dickey et al. 2019)
    phi_max = max(sqrt(3) / max(delta lambda^2), 10 FWHM),  d phi = FWHM / oversample

The block functions take Q and U shaped (nchan, npix), so that a whole spatial tile is one complex
matrix product (F = P^T A^T), or on fine grids a smaller product and a batch FFT (FourierSynthesis:
gridding in lambda^2 and an FFT, as an interferometer's image is made from its visibilities; the
analogy is Pratley & Johnston-Hollitt 2020, ApJ 894, 38), and give the FDF as rows (npix, nphi):
one pixel's spectrum contiguous, as RM-CLEAN's per-spectrum loop (faraday_loops, compiled) and the
peak search read it. NaN channels of a pixel are left out of that pixel's sum and
normalisation.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from ..constants import SPEED_OF_LIGHT

FWHM_PER_LAMBDA2_RANGE = 3.8  # RMSF FWHM x lambda^2 range (Dickey et al. 2019; RM-Tools)
BIAS_FACTOR = 2.3  # polarisation bias correction sqrt(P^2 - 2.3 sigma^2) (George et al. 2012)
# refine_peak keeps RM-CLEAN's components within this many RMSF FWHM of a peak as the peak's own:
# on a grid of FWHM/2, CLEAN spreads a thin source's components over about +-1.5 FWHM.
PEEL_FWHM = 2.0
COMPLEXITY_ROWS = 64  # spectra faraday_complexity restores together: 96 bytes x twice the depths x this
PEEL_DEPTHS = 256  # component depths refine_peak peels at a time: 16 bytes x channels x this
RAYLEIGH_MEDIAN = float(np.sqrt(2.0 * np.log(2.0)))  # median of |F| over sigma per part, for Gaussian noise
REFINE_BATCH = 256  # spectra refined together (_refine_rows): memory about 80 bytes x channels x this
PEAK_ROWS = 512  # spectra row_peaks squares together: 4 bytes x depths x this, in cache


class Scratch:
    """Named working arrays kept from one block to the next (one per thread): memory new to a
    process is page-faulted on first touch, at 3-40 us a 4 kB page on the machines we measured, and
    RM-CLEAN of a 14,400-pixel tile of 401 depths made about 300 MB of fresh arrays (2.1 million
    faults, 8.8 s of system time in a 10 s pass over a 512^2 diffuse field). An array asked for
    again reuses its buffer, grown when too small; it is valid until its name is asked for again."""

    def __init__(self) -> None:
        self._buffers: dict[str, np.ndarray] = {}

    def empty(self, name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        dtype = np.dtype(dtype)
        size = int(np.prod(shape)) * dtype.itemsize
        buffer = self._buffers.get(name)
        if buffer is None or buffer.size < size:
            buffer = self._buffers[name] = np.empty(max(size, 1), np.uint8)
        return buffer[:size].view(dtype).reshape(shape)

    def zeros(self, name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        array = self.empty(name, shape, dtype)
        array.fill(0)
        return array


def _scratch(scratch: Scratch | None, name: str, shape: tuple[int, ...], dtype, zero: bool = False) -> np.ndarray:
    """A working array: from ``scratch`` where given, else new."""
    if scratch is None:
        return np.zeros(shape, dtype) if zero else np.empty(shape, dtype)
    return scratch.zeros(name, shape, dtype) if zero else scratch.empty(name, shape, dtype)


def lambda_squared(freqs_hz: np.ndarray) -> np.ndarray:
    """Wavelength squared (m^2) at each frequency (Hz)."""
    return (SPEED_OF_LIGHT / np.asarray(freqs_hz, dtype=np.float64)) ** 2


@dataclasses.dataclass(frozen=True)
class FaradayGrid:
    """The Faraday-depth sampling and what the band implies about it (rad/m^2)."""

    phi: np.ndarray
    lambda2: np.ndarray
    weights: np.ndarray
    lambda0_sq: float
    fwhm: float
    max_scale: float
    phi_max_channel: float

    @property
    def dphi(self) -> float:
        return float(self.phi[1] - self.phi[0]) if len(self.phi) > 1 else 0.0

    def describe(self) -> dict:
        return {"phi_min": float(self.phi[0]), "phi_max": float(self.phi[-1]), "dphi": self.dphi, "nphi": len(self.phi),
                "rmsf_fwhm": self.fwhm, "max_scale": self.max_scale, "phi_max_channel": self.phi_max_channel,
                "lambda0_sq": self.lambda0_sq}


def faraday_grid(freqs_hz: np.ndarray, weights: np.ndarray | None = None, *, dphi: float | None = None,
                 phi_max: float | None = None, oversample: float = 10.0) -> FaradayGrid:
    """The Faraday-depth grid for a band: symmetric about 0, step FWHM/oversample (or ``dphi``),
    reaching phi_max = max(sqrt(3)/max channel lambda^2 width, 10 FWHM) (or ``phi_max``)."""
    lambda2 = lambda_squared(freqs_hz)
    weights = np.ones_like(lambda2) if weights is None else np.asarray(weights, dtype=np.float64)
    usable = weights > 0
    if usable.sum() < 2:
        raise ValueError("RM synthesis needs at least two channels with data")
    l2 = lambda2[usable]
    span = l2.max() - l2.min()
    fwhm = FWHM_PER_LAMBDA2_RANGE / span
    widths = np.abs(np.diff(np.sort(lambda2)))
    phi_max_channel = float(np.sqrt(3.0) / widths.max()) if len(widths) else np.inf
    dphi = fwhm / oversample if dphi is None else float(dphi)
    if phi_max is None:
        phi_max = max(phi_max_channel, 10.0 * fwhm)
    nphi = int(round(abs(phi_max) / dphi)) * 2 + 1
    phi = (np.arange(nphi) - (nphi - 1) / 2) * dphi
    return FaradayGrid(
        phi=phi, lambda2=lambda2, weights=weights, lambda0_sq=float((weights * lambda2).sum() / weights.sum()),
        fwhm=float(fwhm), max_scale=float(np.pi / l2.min()), phi_max_channel=phi_max_channel,
    )


# Elements of the synthesis matrix made at a time: its phase and exponential are double precision
# (32 bytes an element with the cast), which for 4,096 channels x 20,000 depths would be 2.6 GB
# beside the matrix; a block is 34 MB.
MATRIX_ROWS_ELEMENTS = 2**20


def _synthesis_rows(grid: FaradayGrid, phi: np.ndarray, dtype):
    """(rows, block) of the synthesis matrix on ``phi``, a bounded number of elements at a time."""
    step = max(1, MATRIX_ROWS_ELEMENTS // max(1, len(grid.lambda2)))
    normalised = grid.weights / grid.weights.sum()
    for first in range(0, len(phi), step):
        rows = slice(first, min(len(phi), first + step))
        # The phase is computed in double precision: phi * lambda^2 reaches thousands of radians.
        phase = -2.0 * np.outer(phi[rows], grid.lambda2 - grid.lambda0_sq)
        yield rows, (normalised[None, :] * np.exp(1j * phase)).astype(dtype, copy=False)


def synthesis_matrix(grid: FaradayGrid, phi: np.ndarray | None = None, dtype=np.complex64) -> np.ndarray:
    """A (nphi, nchan) = w_i exp(-2i phi (lambda_i^2 - lambda0^2)) / sum(w): normalised here, in the
    small matrix, so that neither the input nor the FDF needs a pass of its own for it."""
    phi = grid.phi if phi is None else phi
    matrix = np.empty((len(phi), len(grid.lambda2)), dtype)
    for rows, block in _synthesis_rows(grid, phi, dtype):
        matrix[rows] = block
    return matrix


# Rows of a tile synthesised together by SymmetricSynthesis: its two (rows x nphi) float32 products
# stay in cache while they are combined into the FDF.
SYMMETRIC_ROWS = 512


@dataclasses.dataclass(frozen=True)
class SymmetricSynthesis:
    """RM synthesis on a Faraday-depth grid symmetric about 0 from real Q and U: the matrix product
    at half its operations. With C and S the weighted cosine and sine of 2 phi (lambda^2 - lambda0^2)
    at the depths phi >= 0, F_Q = Q (C - iS) and F_U = U (C - iS) are products of real matrices,
    and since Q, U, C and S are real, F(phi) = F_Q + i F_U and F(-phi) = conj(F_Q - i F_U): the
    depths below 0 need no product of their own. Two float32 products of (pixels x channels) by
    (channels x 2 nphi/2), then a sum and a difference into the FDF's rows: 26.6 ms against 33.1 for
    the complex64 product (14,400 pixels, 64 channels, 401 depths, one thread), and Q + iU is never
    interleaved. The same FDF as the complex product to float32 rounding (3.7e-7 of the peak).
    Made by synthesis_operator for the grids faraday_grid makes (always symmetric) where the
    non-uniform FFT would not be cheaper."""

    q_matrix: np.ndarray  # (nchan, 2 m) float32: (C, -S) interleaved, F_Q as complex64 when Q multiplies it
    u_matrix: np.ndarray  # (nchan, 2 m) float32: (S, C) interleaved, i F_U likewise
    nphi: int             # depths of the whole grid; its last m are phi >= 0

    def rows(self, q: np.ndarray, u: np.ndarray, out: np.ndarray, scratch: Scratch | None = None) -> np.ndarray:
        """FDF rows (npix, nphi) of real ``q`` and ``u`` (nchan, npix), finite, into ``out``."""
        nphi, npix = self.nphi, q.shape[1]
        half = nphi // 2  # depths below 0; with an odd nphi the depth 0 is the first of the other m
        skip = nphi % 2
        width = self.q_matrix.shape[1]
        rows = min(SYMMETRIC_ROWS, npix)
        from_q = _scratch(scratch, "symmetric_q", (rows, width), np.float32)
        from_u = _scratch(scratch, "symmetric_u", (rows, width), np.float32)
        for start in range(0, npix, rows):
            n = min(rows, npix - start)
            f_q = np.matmul(q[:, start:start + n].T, self.q_matrix, out=from_q[:n]).view(np.complex64)
            i_f_u = np.matmul(u[:, start:start + n].T, self.u_matrix, out=from_u[:n]).view(np.complex64)
            fdf = out[start:start + n]
            np.add(f_q, i_f_u, out=fdf[:, half:])
            if half:
                negative = fdf[:, half - 1::-1]  # phi = -phi_j, j = skip.. in the order of the positive depths
                np.subtract(f_q[:, skip:], i_f_u[:, skip:], out=negative)
                np.conjugate(fdf[:, :half], out=fdf[:, :half])
        return out


def symmetric_scratch_bytes(nphi: int) -> int:
    """Memory of SymmetricSynthesis.rows's two buffers (per thread, in its Scratch)."""
    return 2 * 4 * SYMMETRIC_ROWS * 2 * (nphi - nphi // 2)


def symmetric_synthesis(grid: FaradayGrid) -> SymmetricSynthesis | None:
    """The SymmetricSynthesis of ``grid``, or None where its depths are not symmetric about 0."""
    phi = np.asarray(grid.phi, dtype=np.float64)
    if not len(phi) or not np.allclose(phi, -phi[::-1], rtol=0, atol=1e-9 * max(1.0, float(np.abs(phi).max()))):
        return None
    # synthesis_matrix's C - iS at the depths >= 0, seen as float32 pairs, is (C, -S) interleaved;
    # times i it is (S, C): its phases in double precision, a bounded block at a time
    positive = np.ascontiguousarray(synthesis_matrix(grid, phi[len(phi) // 2:]).T)  # (nchan, m)
    return SymmetricSynthesis(q_matrix=positive.view(np.float32), u_matrix=(1j * positive).view(np.float32),
                              nphi=len(phi))


# Rows of a tile transformed together by FourierSynthesis: two buffers of 8 bytes x FFT length x
# this (about 4 MB each for 1,259 depths), in cache while they are filled, transformed and read.
FOURIER_ROWS = 256
FOURIER_EPSILON = 1e-7  # the kernel's accuracy (with float32 sums and FFT: about 1e-6 of the FDF peak)
# FFT length over the depths (1.25 is 10% faster, but 1/kernel then amplifies float32 rounding to 1e-5)
FOURIER_OVERSAMPLING = 1.5


def _es_kernel(offset_cells: np.ndarray, width: int, beta: float) -> np.ndarray:
    """The "exponential of semicircle" kernel (Barnett et al. 2019, SIAM J. Sci. Comput. 41, C479)
    of ``width`` cells: exp(beta (sqrt(1 - z^2) - 1)), z = 2 offset / width, zero outside."""
    z = 2.0 * np.asarray(offset_cells, dtype=np.float64) / width
    inside = np.abs(z) < 1.0
    return np.where(inside, np.exp(beta * (np.sqrt(np.where(inside, 1.0 - z * z, 0.0)) - 1.0)), 0.0)


@dataclasses.dataclass(frozen=True)
class FourierSynthesis:
    """RM synthesis on a uniform Faraday-depth grid as a type-1 non-uniform FFT: each channel's
    Q + iU is spread onto a uniform grid in lambda^2 with a compact kernel (one small matrix
    product for a block of pixels: each channel touches ``width`` of the ``band`` grid cells), a
    batch FFT along that axis, and each depth's output divided by the kernel's Fourier transform.
    The same FDF as the sum itself to about 1e-6 of its peak (float32 sums and FFT; tested), in
    nchan x band + O(M log M) operations a pixel instead of nchan x nphi: on RM-Tools' default grid
    (FWHM/10) the band is about a fifth of the depths. Made by synthesis_operator where cheaper.

    With u_i = 2 dphi (lambda_i^2 - lambda0^2) and phi_k = phi_c + m dphi (m = k - kc, an integer),
    exp(-2i phi_k (lambda_i^2 - lambda0^2)) = exp(-2i phi_c (...)) exp(-i m u_i): a Fourier
    series in u of period 2 pi, so u needs no range of its own (the grid wraps)."""

    spread: np.ndarray  # (nchan, band): normalised weight x phase at phi_c x kernel (float32 where phi_c = 0)
    fft_length: int     # M, the grid cells in one period of u
    scale: np.ndarray   # (nphi,) complex64: 1 / kernel transform, with the phase of the band's offset
    centre: int         # kc: the depth at m = 0

    @property
    def band(self) -> int:
        return self.spread.shape[1]

    def rows(self, q: np.ndarray, u: np.ndarray, out: np.ndarray, scratch: Scratch | None = None) -> np.ndarray:
        """FDF rows (npix, nphi) of real ``q`` and ``u`` (nchan, npix), finite, into ``out``."""
        from ducc0.fft import c2c

        nphi, length, band, centre = len(self.scale), self.fft_length, self.band, self.centre
        npix = q.shape[1]
        rows = min(FOURIER_ROWS, npix)
        cells = _scratch(scratch, "fourier_cells", (rows, length), np.complex64)
        spectrum = _scratch(scratch, "fourier_spectrum", (rows, length), np.complex64)
        real = np.isrealobj(self.spread)
        if real:  # Q and U spread apart by real products, half the operations of one complex product
            from_q, from_u = (_scratch(scratch, name, (rows, band), np.float32) for name in ("fourier_q", "fourier_u"))
        else:
            p = _scratch(scratch, "fourier_p", (q.shape[0], rows), np.complex64)
        cells[:, band:] = 0
        for start in range(0, npix, rows):
            n = min(rows, npix - start)
            if real:
                cells[:n, :band].real = np.matmul(q[:, start:start + n].T, self.spread, out=from_q[:n])
                cells[:n, :band].imag = np.matmul(u[:, start:start + n].T, self.spread, out=from_u[:n])
            else:
                p[:, :n].real = q[:, start:start + n]
                p[:, :n].imag = u[:, start:start + n]
                np.matmul(p[:, :n].T, self.spread, out=cells[:n, :band])
            c2c(cells[:n], axes=(1,), forward=True, out=spectrum[:n], nthreads=1)
            # m = -kc..-1 are the last kc bins of the FFT, m = 0.. the first
            np.multiply(spectrum[:n, length - centre:], self.scale[:centre], out=out[start:start + n, :centre])
            np.multiply(spectrum[:n, :nphi - centre], self.scale[centre:], out=out[start:start + n, centre:])
        return out


def fourier_fft_length(nphi: int, oversampling: float = FOURIER_OVERSAMPLING) -> int:
    """FourierSynthesis's FFT length for ``nphi`` depths: a fast size at least oversampling x nphi."""
    from ducc0.fft import good_size

    return int(good_size(int(np.ceil(oversampling * nphi))))


def fourier_scratch_bytes(nphi: int) -> int:
    """Memory of FourierSynthesis.rows's buffers (per thread, in its Scratch): the cells and their
    transform, and the real spreading's two products (band cells each, at most the FFT length)."""
    return (2 * 8 + 2 * 4) * FOURIER_ROWS * fourier_fft_length(nphi)


def fourier_synthesis(grid: FaradayGrid, epsilon: float = FOURIER_EPSILON,
                      oversampling: float = FOURIER_OVERSAMPLING) -> FourierSynthesis | None:
    """The FourierSynthesis of ``grid``, or None where its band would not fit in one period (a
    grid too coarse for the band, where the matrix product is as cheap). Kernel width and shape
    as in FINUFFT for this oversampling (Barnett et al. 2019)."""
    nphi = len(grid.phi)
    if nphi < 3 or grid.dphi <= 0:
        return None
    length = fourier_fft_length(nphi, oversampling)
    sigma = length / nphi
    width = int(np.ceil(-np.log(epsilon) / (np.pi * np.sqrt(1.0 - 1.0 / sigma)))) + 1
    beta = 0.97 * np.pi * width * (1.0 - 1.0 / (2.0 * sigma))
    cell = 2.0 * np.pi / length
    x = grid.lambda2 - grid.lambda0_sq
    position = 2.0 * grid.dphi * x / cell  # each channel's u in cells
    first = int(np.floor(position.min() - width / 2.0))
    band = int(np.ceil(position.max() + width / 2.0)) - first + 1
    if band > length:
        return None
    centre = nphi // 2
    phi_c = float(grid.phi[centre])
    normalised = grid.weights / grid.weights.sum()
    cells = np.arange(first, first + band)
    kernel = _es_kernel(cells[None, :] - position[:, None], width, beta)  # (nchan, band)
    spread = (normalised * np.exp(-2j * phi_c * x))[:, None] * kernel
    # The kernel's transform at each m: Gauss-Legendre over its support (smooth there), in cells.
    nodes, node_weights = np.polynomial.legendre.leggauss(4 * width + 16)
    t = 0.5 * width * nodes
    m = np.arange(nphi) - centre
    transform = (0.5 * width * node_weights * _es_kernel(t, width, beta)) @ np.cos(np.outer(t, m * cell))
    # cells start at ``first``, not 0: the FFT's phase for that offset is taken out here
    scale = np.exp(-1j * m * first * cell) / transform
    # on a grid symmetric about 0 the centre is phi_c = 0 and the spreading real
    spread = spread.real.astype(np.float32) if phi_c == 0 else spread.astype(np.complex64)
    return FourierSynthesis(spread=spread, fft_length=length, scale=scale.astype(np.complex64), centre=centre)


# Cost of a FourierSynthesis against the matrix product, in multiply-adds of that product a pixel
# (measured with one thread, 1,024-pixel blocks, 256 channels x 1,259 depths): the FFT about 2.7
# per M log2 M, the scaled copy of each depth out of it about 27 (memory-bound), besides the
# spreading product's nchan x band.
FFT_COST = 2.7
SCALE_COST = 27.0


def synthesis_operator(grid: FaradayGrid) -> np.ndarray | FourierSynthesis | SymmetricSynthesis:
    """What the pass synthesises a tile with: the FourierSynthesis where its estimated cost is
    below the matrix product's (fine grids, many depths), else the product itself, by
    SymmetricSynthesis on a grid symmetric about 0 (faraday_grid's always are) and otherwise by
    synthesis_matrix. (The costs were calibrated against the complex product; the symmetric one
    takes about 0.8 of its time, the margin the FFT's estimate must beat.)"""
    fourier = fourier_synthesis(grid)
    if fourier is not None:
        nchan, nphi = len(grid.lambda2), len(grid.phi)
        cost = (nchan * fourier.band + FFT_COST * fourier.fft_length * np.log2(fourier.fft_length)
                + SCALE_COST * nphi)
        if cost < 0.8 * nchan * nphi:
            return fourier
    symmetric = symmetric_synthesis(grid)
    return synthesis_matrix(grid) if symmetric is None else symmetric


def rmsf(grid: FaradayGrid, phi: np.ndarray | None = None) -> np.ndarray:
    """The rotation measure spread function on ``phi`` (default the grid), complex128, peak 1."""
    phi = grid.phi if phi is None else phi
    out = np.empty(len(phi), np.complex128)
    for rows, block in _synthesis_rows(grid, phi, np.complex128):
        out[rows] = block.sum(axis=1)
    return out


def doubled_phi(grid: FaradayGrid) -> np.ndarray:
    """Twice the grid's range at the same step, the RMSF support RM-CLEAN needs."""
    n = len(grid.phi)
    return (np.arange(2 * n - 1) - (n - 1)) * grid.dphi


def rm_synthesis_rows(q: np.ndarray, u: np.ndarray, grid: FaradayGrid,
                      matrix: np.ndarray | FourierSynthesis | SymmetricSynthesis | None = None,
                      out: np.ndarray | None = None, work: np.ndarray | None = None,
                      scratch: Scratch | None = None) -> np.ndarray:
    """FDF of Q, U blocks (nchan, npix) as rows: (npix, nphi) complex64, one spectrum per row, the
    layout the per-spectrum loops (RM-CLEAN, the peak search) read contiguously. NaN channels are
    skipped per pixel.

    The normalisation 1 / sum(w) is in the matrix (synthesis_matrix), so the matrix product is the
    only pass over the FDF, and a block without blanks is read once to check it (two sums: NaN or
    inf anywhere makes them so) and, for the complex matrix, once to interleave Q and U. Only where
    channels are blanked is a pixel's spectrum scaled by sum(w) / its own sum of weights (in copies
    of Q and U with the blanks zeroed). ``out`` (at least (npix, nphi) complex64) receives it, and
    ``work`` (flat complex64, at least q.size) holds Q + iU: buffers used again tile after tile are
    not page-faulted anew.

    ``matrix`` may instead be a FourierSynthesis or a SymmetricSynthesis (synthesis_operator
    chooses), which read Q and U as they are (float32, no Q + iU) and take their buffers from
    ``scratch``.

    Without a ``matrix`` (made once for many tiles by the caller) the spectra are synthesised a
    block of depths at a time (_synthesis_rows): for the few spectra of a catalogue's sources the
    whole matrix would be far larger than they are (659 MB at 4,096 channels x 20,119 depths).
    """
    with np.errstate(over="ignore", invalid="ignore"):
        blanked = not (np.isfinite(q.sum()) and np.isfinite(u.sum()))  # (or so large a sum overflows)
    if blanked:
        q, u = _blanks_zeroed(q, u, grid)
    fdf = np.empty((q.shape[1], len(grid.phi)), np.complex64) if out is None else out[:q.shape[1]]
    if isinstance(matrix, (FourierSynthesis, SymmetricSynthesis)):
        return matrix.rows(np.asarray(q, np.float32), np.asarray(u, np.float32), fdf, scratch)
    p = np.empty(q.shape, dtype=np.complex64) if work is None else work[:q.size].reshape(q.shape)
    p.real = q
    p.imag = u
    if matrix is not None:
        return np.matmul(p.T, matrix.T, out=fdf)
    for rows, block in _synthesis_rows(grid, grid.phi, np.complex64):
        fdf[:, rows] = p.T @ block.T
    return fdf


def _blanks_zeroed(q: np.ndarray, u: np.ndarray, grid: FaradayGrid) -> tuple[np.ndarray, np.ndarray]:
    """Copies (float32) of Q and U with each pixel's blanked channels (Q or U not finite) zeroed and
    its other channels scaled by sum(w) / their own sum of weights: the synthesis of the copies is
    each pixel's FDF without its blanks, NaN for a pixel with no channel left."""
    finite = np.isfinite(q) & np.isfinite(u)
    norm = grid.weights.astype(np.float32) @ finite.astype(np.float32)  # sum of weights per pixel
    with np.errstate(divide="ignore"):
        scale = np.where(norm > 0, np.float32(grid.weights.sum()) / norm, np.nan).astype(np.float32)
    return tuple(np.where(finite, part, np.float32(0)).astype(np.float32) * scale for part in (q, u))


def rm_synthesis_block(q: np.ndarray, u: np.ndarray, grid: FaradayGrid, matrix: np.ndarray | None = None) -> np.ndarray:
    """FDF (nphi, npix) complex64 of Q, U blocks (nchan, npix): rm_synthesis_rows seen along phi first."""
    return rm_synthesis_rows(q, u, grid, matrix).T


def fdf_noise_theoretical(grid: FaradayGrid, channel_sigma: np.ndarray) -> float:
    """Noise of the real or imaginary part of the FDF: sqrt(sum w^2 sigma^2) / sum w."""
    w = grid.weights
    return float(np.sqrt(np.nansum(w**2 * np.asarray(channel_sigma) ** 2)) / w.sum())


@dataclasses.dataclass
class CleanedRows:
    """RM-CLEAN of some rows of an (npix, nphi) FDF: which rows, and their clean FDF (components
    restored plus residual), residual and components, each (len(rows), nphi) complex64. The other
    rows were not cleaned: their clean FDF and residual are the dirty FDF, with no components."""

    rows: np.ndarray
    clean: np.ndarray
    residual: np.ndarray
    components: np.ndarray
    iterations: np.ndarray

    def full(self, dirty: np.ndarray, part: str) -> np.ndarray:
        """``part`` (clean, residual or components) of every row of ``dirty``, (npix, nphi)."""
        whole = np.zeros_like(dirty) if part == "components" else dirty.copy()
        whole[self.rows] = getattr(self, part)
        return whole

    def of(self, dirty: np.ndarray, part: str, rows: np.ndarray) -> np.ndarray:
        """``part`` of the given rows of ``dirty`` only."""
        chosen = np.zeros((len(rows), dirty.shape[1]), dirty.dtype) if part == "components" else dirty[rows].copy()
        if not len(self.rows):
            return chosen
        position = np.searchsorted(self.rows, rows)
        inside = (position < len(self.rows)) & (self.rows[np.minimum(position, len(self.rows) - 1)] == rows)
        chosen[inside] = getattr(self, part)[position[inside]]
        return chosen


def restoring_function(grid: FaradayGrid) -> np.ndarray:
    """The restoring Gaussian (FWHM of the RMSF, peak 1) on twice the depth range, float32, centre
    at index nphi - 1, as RM-CLEAN's RMSF is kept."""
    offsets = doubled_phi(grid)
    return np.exp(-4.0 * np.log(2.0) * (offsets / grid.fwhm) ** 2).astype(np.float32)


def rm_clean_rows(fdf: np.ndarray, grid: FaradayGrid, cutoff: np.ndarray | float, *, gain: float = 0.1,
                  max_iter: int = 1000, rmsf_doubled: np.ndarray | None = None, mask: float | None = None,
                  restore: np.ndarray | None = None, highest: np.ndarray | None = None,
                  scratch: Scratch | None = None) -> CleanedRows:
    """RM-CLEAN (Heald et al. 2009) of the spectra of an (npix, nphi) FDF, one spectrum at a time
    (faraday_loops.hogbom_rows).

    Each iteration takes the peak of a spectrum's residual while it reaches ``cutoff`` (|F|, scalar
    or per pixel), stores gain x peak as a component at that depth and subtracts the RMSF shifted
    there; the clean FDF is the components convolved with a Gaussian of the RMSF FWHM plus the
    residual. Spectra that start below the cutoff, or hold NaN, are not cleaned.

    ``mask`` (|F|): only pixels whose dirty peak reaches it are cleaned (down to ``cutoff``), as an
    imager cleans inside a mask: a noise pixel's highest of hundreds of independent depths is above
    3 sigma more often than not, and cleaning it finds nothing but noise. The others keep their
    dirty FDF, with no components.

    With ``scratch`` the result's arrays are its buffers, valid until the next call with it.
    """
    from .faraday_loops import hogbom_rows

    npix, nphi = fdf.shape
    if rmsf_doubled is None:
        rmsf_doubled = rmsf(grid, doubled_phi(grid))
    if restore is None:
        restore = restoring_function(grid)
    cutoff = np.broadcast_to(np.asarray(cutoff, dtype=np.float32), (npix,))
    if highest is None:  # each spectrum's largest |F| on the grid (NaN for a spectrum with NaN)
        highest = np.empty(npix, np.float32)
        for first in range(0, npix, 4096):  # |F| a few MB at a time, not a second FDF
            part = fdf[first:first + 4096]
            highest[first:first + 4096] = np.sqrt((part.real**2 + part.imag**2).max(axis=1))
    with np.errstate(invalid="ignore"):
        # a spectrum that is zero everywhere (noise-free data without polarisation) has nothing to clean
        start = np.isfinite(highest) & (highest >= cutoff) & (highest > 0)
        if mask is not None:
            start &= highest >= mask
    rows = np.nonzero(start)[0]
    shape = (len(rows), nphi)
    res_re, res_im = (_scratch(scratch, name, shape, np.float32) for name in ("res_re", "res_im"))
    if len(rows) == npix:  # every spectrum (a diffuse field): no gather
        res_re[...], res_im[...] = fdf.real, fdf.imag
    else:
        np.take(fdf.real, rows, axis=0, out=res_re, mode="clip")  # (indices valid: "raise" would buffer)
        np.take(fdf.imag, rows, axis=0, out=res_im, mode="clip")
    components = _scratch(scratch, "components", shape, np.complex64, zero=True)
    clean = _scratch(scratch, "clean", shape, np.complex64)
    kernel = np.asarray(rmsf_doubled, dtype=np.complex64)
    iterations = hogbom_rows(res_re, res_im, components, clean, np.ascontiguousarray(kernel.real),
                             np.ascontiguousarray(kernel.imag), np.asarray(restore, dtype=np.float32),
                             np.ascontiguousarray(cutoff[rows]), np.float32(gain), int(max_iter))
    residual = _scratch(scratch, "residual", shape, np.complex64)
    residual.real = res_re
    residual.imag = res_im
    return CleanedRows(rows=rows, clean=clean, residual=residual, components=components, iterations=iterations)


def rm_clean_block(fdf: np.ndarray, grid: FaradayGrid, cutoff: np.ndarray | float, *, gain: float = 0.1,
                   max_iter: int = 1000, rmsf_doubled: np.ndarray | None = None, mask: float | None = None,
                   want_residual: bool = True) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """RM-CLEAN of a block of FDFs laid out (nphi, npix): rm_clean_rows, returned as (clean FDF,
    residual or None, components), each (nphi, npix) complex64."""
    dirty = np.ascontiguousarray(np.asarray(fdf, dtype=np.complex64).T)
    cleaned = rm_clean_rows(dirty, grid, cutoff, gain=gain, max_iter=max_iter, rmsf_doubled=rmsf_doubled, mask=mask)
    residual = cleaned.full(dirty, "residual").T if want_residual else None
    return cleaned.full(dirty, "clean").T, residual, cleaned.full(dirty, "components").T


def parabolic_peak(values: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fractional offset (-0.5..0.5) and height of the parabola through values[index-1..index+1]
    along axis 0, per column; offset 0 at the ends of the axis."""
    n = values.shape[0]
    cols = np.arange(values.shape[1])
    inner = (index > 0) & (index < n - 1)
    left = values[np.clip(index - 1, 0, n - 1), cols]
    mid = values[index, cols]
    right = values[np.clip(index + 1, 0, n - 1), cols]
    denominator = left - 2 * mid + right
    with np.errstate(divide="ignore", invalid="ignore"):
        offset = np.where(inner & (denominator != 0), 0.5 * (left - right) / denominator, 0.0)
    return offset, mid - 0.25 * (left - right) * offset


def phasor(angle: np.ndarray) -> np.ndarray:
    """exp(i angle) in single precision (complex64, within 3e-7 of the exact value), from float32
    sine and cosine of the angle reduced to +-pi in double precision. NumPy's float32 sin and cos
    are vectorised where its complex exp is not: for refine_peak's (64 channels x 256 pixels)
    phases 0.03 ms against 0.55 ms, which had been 90% of refining every candidate of a diffuse
    field (0.17 of a synthesis-only process's 2.5 CPU seconds on benchmarks/faraday.py's diffuse
    sky). The FDF is synthesised in complex64 (the matrix product and the FFT route alike), so the
    refined peak is as exact as the grid it refines."""
    reduced = np.asarray(angle, dtype=np.float64)
    reduced = (reduced - 2.0 * np.pi * np.rint(reduced * (0.5 / np.pi))).astype(np.float32)
    out = np.empty(reduced.shape, np.complex64)
    np.cos(reduced, out=out.real)
    np.sin(reduced, out=out.imag)
    return out


def refine_peak(channel_p: np.ndarray, grid: FaradayGrid, phi_start: np.ndarray, components: np.ndarray | None = None,
                *, levels: int = 3, samples: int = 9) -> tuple[np.ndarray, np.ndarray]:
    """Faraday depth of the FDF's peak near ``phi_start`` per pixel, and the FDF there, found by
    evaluating the FDF directly from the channel data rather than interpolating the grid.

    channel_p: Q + iU, (nchan, npix), NaN where a channel has no data; phi_start (npix,) a coarse
    maximum (within a grid step of the peak). Each of ``levels`` zooms evaluates F exactly at
    ``samples`` depths spanning +-1 step about the current estimate and takes the parabola through
    the best three, the step shrinking by (samples - 1) / 2 each time: with the defaults the last
    samples are dphi / 64 apart, where the main lobe is a parabola to far better than the noise, so
    the depth is unbiased for grid steps up to FWHM / 2 (a parabola through the grid's own samples
    at FWHM / 3 is off by up to 0.006 FWHM, 6 times the depth error at SNR 500). Evaluating F is one (samples x nchan) x
    (nchan x npix) product per level, so every pixel of a tile can afford it.

    With ``components`` (RM-CLEAN's, (nphi, npix)) the FDF searched is that of the data less the
    components farther than PEEL_FWHM RMSF widths from ``phi_start``: the peak's own emission without the
    sidelobes of other depths, where the clean FDF itself, built of components on the grid, would
    put the peak where the grid does.
    """
    lam = (grid.lambda2 - grid.lambda0_sq)[:, None]  # (nchan, 1)
    finite = np.isfinite(channel_p)
    data = np.where(finite, channel_p, 0).astype(np.complex128)
    if components is not None:
        far = np.abs(grid.phi[:, None] - phi_start[None, :]) > PEEL_FWHM * grid.fwhm
        others = np.where(far, components, 0)
        peeled = np.nonzero(others.any(axis=0))[0]
        if peeled.size:
            # A component c at phi_k is the channel data c exp(2i phi_k (lambda^2 - lambda0^2)); only
            # the depths that hold components enter (a few dozen of 1,259: the full (nchan, nphi)
            # exponential for every tile was a fifth of a 256-channel pass), PEEL_DEPTHS at a time:
            # noise components of a batch of spectra can hold thousands of depths, and their
            # exponential at 4,096 channels was 0.2 GB
            depths = np.nonzero(others[:, peeled].any(axis=1))[0]
            model = np.zeros((lam.shape[0], peeled.size), np.complex128)
            for first in range(0, depths.size, PEEL_DEPTHS):
                some = depths[first:first + PEEL_DEPTHS]
                unit = np.exp(2j * lam * grid.phi[None, some])  # (nchan, len(some))
                model += unit @ others[some][:, peeled].astype(np.complex128)
            data[:, peeled] -= np.where(finite[:, peeled], model, 0)
    weighted = data * grid.weights[:, None]
    norm = grid.weights @ finite
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(norm > 0, 1.0 / norm, np.nan)
    phi = np.asarray(phi_start, dtype=np.float64).copy()
    step = grid.dphi if grid.dphi > 0 else grid.fwhm / 10.0
    for _ in range(levels):
        offsets = np.linspace(-step, step, samples)
        centred = weighted * phasor(-2.0 * lam * phi[None, :])  # (nchan, npix)
        amplitude = np.abs(np.exp(-2j * offsets[:, None] * lam.T) @ centred)  # (samples, npix)
        best = np.clip(np.argmax(amplitude, axis=0), 1, samples - 2)
        shift, _ = parabolic_peak(amplitude, best)
        step = offsets[1] - offsets[0]
        phi = phi + offsets[best] + shift * step
        phi = np.where(np.isfinite(phi), phi, phi_start)
    value = (weighted * phasor(-2.0 * lam * phi[None, :])).sum(axis=0) * scale
    return phi, value


def _grid_peaks(fdf_rows: np.ndarray, grid: FaradayGrid, with_index: bool = False) -> tuple[np.ndarray, ...]:
    """Each row's peak on the grid, refined by a parabola (row_peaks): (depth, amplitude, real and
    imaginary part there, valid (the row is finite), at the grid's edge, and with ``with_index``
    the grid index of the largest |F|)."""
    n, nphi = fdf_rows.shape
    index, offset, peak, real, imag = row_peaks(fdf_rows)
    valid = index >= 0
    phi_peak = np.where(valid, grid.phi[np.maximum(index, 0)] + offset * grid.dphi, np.nan)
    at_edge = valid & ((index == 0) | (index == nphi - 1))
    return (phi_peak, peak, real, imag, valid, at_edge) + ((index,) if with_index else ())


def row_peaks(fdf: np.ndarray) -> tuple[np.ndarray, ...]:
    """Peak of |F| of each row of ``fdf`` (n, nphi): the grid index of the largest |F| (the first,
    if equal), the fractional offset (-0.5..0.5) and height of the parabola through |F| at it and
    its neighbours, and the real and imaginary parts of F interpolated by the parabolas through the
    same three samples at that offset (offset 0 at the ends of the axis). A row holding NaN gives
    index -1 and NaN values.

    |F| is formed PEAK_ROWS rows at a time, in cache, by NumPy's vectorised complex absolute value
    (2.4 ms for 14,400 spectra of 401 depths, where |F|^2 from the strided real and imaginary parts
    took 5.0): 0.6 times the compiled loop's time it replaced (6.8 ms), whose loading cost a process
    0.5 s (numba's import and its cache), half the kernel of a 64-channel 512^2 pass. A row holding
    NaN has its (first) NaN as its argmax, so the value there says whether the row is finite."""
    n, nphi = fdf.shape
    index = np.empty(n, np.int64)
    amplitude_rows = np.empty((min(n, PEAK_ROWS), nphi), np.float32 if fdf.dtype == np.complex64 else np.float64)
    for start in range(0, n, PEAK_ROWS):
        block = fdf[start:start + PEAK_ROWS]
        part = np.abs(block, out=amplitude_rows[:block.shape[0]])
        index[start:start + block.shape[0]] = np.argmax(part, axis=1)
    rows = np.arange(n)
    inner = (index > 0) & (index < nphi - 1)
    mid, left, right = (fdf[rows, np.clip(index + k, 0, nphi - 1)].astype(np.complex128) for k in (0, -1, 1))
    finite = np.isfinite(mid)
    amplitude = np.abs(np.stack([left, mid, right]))
    with np.errstate(divide="ignore", invalid="ignore"):  # the rows not finite are set below
        offset, peak = parabolic_peak(amplitude, np.ones(n, np.int64))
        offset = np.where(inner, offset, 0.0)
        peak = np.where(inner, peak, amplitude[1])
        value = np.where(inner, mid + 0.5 * offset * (right - left) + 0.5 * offset**2 * (left - 2.0 * mid + right),
                         mid)
    index[~finite] = -1
    offset[~finite] = peak[~finite] = np.nan
    value[~finite] = complex(np.nan, np.nan)
    return index, offset, peak, value.real.copy(), value.imag.copy()


def _refine_rows(chosen: np.ndarray, phi_peak: np.ndarray, peak: np.ndarray, real: np.ndarray, imag: np.ndarray,
                 channel_p: np.ndarray, grid: FaradayGrid, components_rows: np.ndarray | None) -> None:
    """refine_peak of the ``chosen`` rows, a batch at a time (it holds about 80 bytes per channel per
    row); ``channel_p`` (nchan, len(chosen)) and ``components_rows`` (len(chosen), nphi) of those
    rows only. The peak arrays are updated in place."""
    for start in range(0, chosen.size, REFINE_BATCH):
        part = slice(start, start + REFINE_BATCH)
        cols = chosen[part]
        phi_peak[cols], value = refine_peak(channel_p[:, part], grid, phi_peak[cols],
                                            None if components_rows is None else components_rows[part].T)
        peak[cols], real[cols], imag[cols] = np.abs(value), value.real, value.imag


def peak_quantities(phi_peak: np.ndarray, peak: np.ndarray, real: np.ndarray, imag: np.ndarray,
                    sigma: np.ndarray, grid: FaradayGrid, valid: np.ndarray, at_edge: np.ndarray) -> dict:
    """What a peak of the FDF gives: depth, amplitude and its bias correction, errors, the
    polarisation angle at the peak and derotated to lambda^2 = 0 (NaN where not ``valid``).

    Errors as in Brentjens & de Bruyn 2005 (appendix A) and RM-Tools: sigma_phi = FWHM/(2 SNR),
    sigma_chi = sigma/(2 P) rad; the derotated angle's error adds the lambda0^2 lever arm."""
    sigma = np.broadcast_to(np.asarray(sigma, dtype=np.float64), peak.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = peak / sigma
        angle = 0.5 * np.arctan2(imag, real)
        angle0 = angle - phi_peak * grid.lambda0_sq
        nchan = int((grid.weights > 0).sum())
        var_l2 = float(np.var(grid.lambda2[grid.weights > 0]))
        angle_err = 0.5 / snr
        angle0_err = np.sqrt(sigma**2 * nchan / (4.0 * (nchan - 2.0) * peak**2)
                             * ((nchan - 1.0) / nchan + grid.lambda0_sq**2 / var_l2))
        debiased = np.sqrt(np.clip(peak**2 - BIAS_FACTOR * sigma**2, 0.0, None))
    out = {
        "peak_pi": peak, "peak_pi_debiased": debiased, "peak_phi": phi_peak, "peak_phi_err": grid.fwhm / (2.0 * snr),
        "snr": snr, "pol_angle_deg": np.rad2deg(angle) % 180.0, "pol_angle_err_deg": np.rad2deg(angle_err),
        "pol_angle0_deg": np.rad2deg(angle0) % 180.0, "pol_angle0_err_deg": np.rad2deg(angle0_err),
        "fdf_noise": sigma.copy(), "peak_at_edge": at_edge,
    }
    for key, value in out.items():
        if value.dtype.kind == "f":
            out[key] = np.where(valid, value, np.nan)
    return out


def fdf_peak(fdf: np.ndarray, grid: FaradayGrid, sigma: np.ndarray | float, channel_p: np.ndarray | None = None,
             components: np.ndarray | None = None, refine_snr: float = 0.0) -> dict[str, np.ndarray]:
    """Peak of |F| per column of (nphi, npix): Faraday depth, amplitude and its bias correction,
    errors, the polarisation angle at the peak and derotated to lambda^2 = 0 (peak_quantities).

    The peak is the grid's maximum refined by a parabola through its neighbours, or, given the
    channel data ``channel_p`` (Q + iU, (nchan, npix)), refined by evaluating the FDF exactly
    (refine_peak, with RM-CLEAN's ``components`` (nphi, npix) peeled): accurate on coarse grids.
    Only columns whose grid peak reaches ``refine_snr`` are refined: noise pixels keep the parabola,
    which is as good as their noise, for none of the cost.
    """
    rows = np.ascontiguousarray(np.asarray(fdf).T)
    phi_peak, peak, real, imag, valid, at_edge = _grid_peaks(rows, grid)
    sigma = np.broadcast_to(np.asarray(sigma, dtype=np.float64), peak.shape)
    if channel_p is not None:
        with np.errstate(invalid="ignore"):
            chosen = np.nonzero(valid & (peak >= refine_snr * sigma))[0]
        _refine_rows(chosen, phi_peak, peak, real, imag, channel_p[:, chosen], grid,
                     None if components is None else np.asarray(components).T[chosen])
    return peak_quantities(phi_peak, peak, real, imag, sigma, grid, valid, at_edge)


def robust_fdf_noise(fdf: np.ndarray, stride: int = 1, axis: int = 0) -> np.ndarray:
    """Noise (per real and imaginary part) of each FDF of ``fdf`` (spectra along ``axis``) from the
    median of |F| at every ``stride``-th depth: |F| of complex Gaussian noise is Rayleigh
    distributed, with median sigma sqrt(2 ln 2). Robust as a MAD is to the few depths a source or
    its sidelobes hold, a seventh of its cost (one median of |F| instead of two of the real and
    imaginary parts), and meaningful on an RM-CLEAN residual, where sources and their sidelobes are
    gone. NaN ignored."""
    taken = np.moveaxis(np.asarray(fdf), axis, -1)[..., ::stride]
    if np.iscomplexobj(taken):
        # |F|^2 partitioned (no square roots, no copy for the median's mean): 3 times faster,
        # the same median of |F|
        power = taken.real * taken.real + taken.imag * taken.imag
        if power.shape[-1] and np.isfinite(power).all():
            k = power.shape[-1] // 2
            if power.shape[-1] % 2:
                return np.sqrt(np.partition(power, k, axis=-1)[..., k]) / RAYLEIGH_MEDIAN
            middle = np.sqrt(np.partition(power, (k - 1, k), axis=-1)[..., k - 1:k + 1])
            return middle.mean(axis=-1) / RAYLEIGH_MEDIAN
    amplitude = np.abs(taken)
    if np.isfinite(amplitude).all():
        return np.median(amplitude, axis=-1) / RAYLEIGH_MEDIAN
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a pixel without data has no noise: NaN, said once
        return np.nanmedian(amplitude, axis=-1) / RAYLEIGH_MEDIAN


def noise_stride(grid: FaradayGrid) -> int:
    """Depths closer than half the RMSF FWHM carry nearly the same noise: one in this many is enough
    for a robust rms (on the default grid, 10 depths per FWHM, 1 in 5)."""
    return max(1, int(grid.fwhm / (2 * grid.dphi)))


def components_second_moment(components: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Spread in depth (rad/m^2) of each row's clean components (n, nphi), weighted by their
    amplitude, about their mean depth: a Faraday-complexity indicator (NaN without components).
    Summed over the components alone (a few per row of hundreds of depths), not the whole rows."""
    row, depth = np.nonzero(components)
    n = components.shape[0]
    weight = np.abs(components[row, depth]).astype(np.float64)
    total = np.bincount(row, weight, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(row, weight * phi[depth], minlength=n) / total
        spread = np.bincount(row, weight * (phi[depth] - mean[row]) ** 2, minlength=n) / total
    return np.where(total > 0, np.sqrt(spread), np.nan)


COMPLEXITY_SNR = 5.0  # clean components count towards complexity where their restored model reaches this SNR


@dataclasses.dataclass(frozen=True)
class FaradayComplexity:
    """Per spectrum: the second moment of the significant clean components (m2_CC, rad/m^2), the
    number of distinct peaks of their restored model (Ncomp), and complex = either says more than one."""

    m2_cc: np.ndarray
    ncomp: np.ndarray
    complex: np.ndarray


def faraday_complexity(components: np.ndarray, grid: FaradayGrid, sigma: np.ndarray | float,
                       snr: float = COMPLEXITY_SNR, m2_fwhm: float = 0.3) -> FaradayComplexity:
    """Complexity of spectra from their RM-CLEAN components (n, nphi), counting only the components
    that matter: those where the restored clean model |C * Gaussian(FWHM)| reaches ``snr`` x the
    spectrum's noise ``sigma``. Cleaning down to 3 sigma over hundreds of independent depths leaves
    a few noise components far from the source in most spectra (the largest |F| of 100 Rayleigh
    samples exceeds 3 sigma 36% of the time); counted, they put m2 at tens of RMSF widths for a
    simple source (the level is at most half the model's peak, so that a faint source keeps its
    own components). Ncomp counts the local maxima of the restored model above that level (two equal
    components 1 FWHM apart make two); complex where Ncomp > 1 or m2_CC > ``m2_fwhm`` x FWHM.
    A single component between grid depths is cleaned into the two around it: m2 up to dphi / 2."""
    components = np.atleast_2d(np.asarray(components))
    sigma = np.broadcast_to(np.asarray(sigma, dtype=np.float64), components.shape[:1])
    kernel = restoring_function(grid).astype(np.float64)
    # COMPLEXITY_ROWS spectra at a time: the model is made in complex128 at twice their length (a
    # 64-row pass is 0.12 GB on 20,000 depths, where all of a catalogue's sources at once grew with them)
    parts = [_complexity_rows(components[first:first + COMPLEXITY_ROWS], grid, kernel,
                              sigma[first:first + COMPLEXITY_ROWS], snr, m2_fwhm)
             for first in range(0, max(1, components.shape[0]), COMPLEXITY_ROWS)]
    return FaradayComplexity(*(np.concatenate([getattr(part, name) for part in parts])
                               for name in ("m2_cc", "ncomp", "complex")))



def _complexity_rows(components: np.ndarray, grid: FaradayGrid, kernel: np.ndarray, sigma: np.ndarray,
                     snr: float, m2_fwhm: float) -> FaradayComplexity:
    n, nphi = components.shape
    # the restored model: components convolved with the restoring Gaussian (numpy's FFT: scipy.signal
    # would cost the catalogue job 0.4 s of import for this one product)
    size = nphi + kernel.size - 1
    model = np.abs(np.fft.ifft(np.fft.fft(components.astype(np.complex128), size, axis=1)
                               * np.fft.fft(kernel, size)[None, :], axis=1)[:, nphi - 1:2 * nphi - 1])
    # at low SNR the model of the source itself is below snr x sigma after cleaning to 3 sigma: half
    # its peak still counts, so that a detected source has its component
    level = np.minimum(snr * sigma, 0.5 * model.max(axis=1))
    level = level[:, None]
    significant = model >= level
    kept = np.where(significant, components, 0)
    m2 = components_second_moment(kept, grid.phi)
    padded = np.pad(model, ((0, 0), (1, 1)), constant_values=-np.inf)
    peaks = significant & (model > padded[:, :-2]) & (model >= padded[:, 2:])
    ncomp = np.maximum(peaks.sum(axis=1), 1)
    with np.errstate(invalid="ignore"):
        flagged = (ncomp > 1) | (m2 > m2_fwhm * grid.fwhm)
    return FaradayComplexity(m2_cc=m2, ncomp=ncomp, complex=flagged)


@dataclasses.dataclass(frozen=True)
class SigmaAdd:
    """The additional scatter of Q, U (or q, u) about a single thin component, in units of their
    noise: the median of its posterior and the 15.72 and 84.27 percentiles (NaN without data)."""

    median: float
    low: float
    high: float

    @property
    def err(self) -> float:
        return 0.5 * (self.high - self.low)


def sigma_add(residual: np.ndarray, samples: int = 1000) -> SigmaAdd:
    """sigma_add (Purcell et al. 2017; RM-Tools' calc_sigma_add on Q and U together) of residuals
    already divided by their noise: each is taken as drawn from N(0, 1 + s^2), the posterior of s
    with prior 1/s evaluated on ``samples`` values from range/samples to the range of the
    residuals +-1. It depends on the residuals through their count and sum of squares alone."""
    r = np.asarray(residual, dtype=np.float64)
    r = r[np.isfinite(r)]
    if r.size < 3:
        return SigmaAdd(float("nan"), float("nan"), float("nan"))
    span = (r.max() + 1.0) - (r.min() - 1.0)
    s = np.linspace(span / samples, span, samples)
    variance = 1.0 + s**2
    log_posterior = -np.log(s) - 0.5 * r.size * np.log(variance) - 0.5 * np.sum(r**2) / variance
    posterior = np.exp(log_posterior - log_posterior.max())
    cdf = np.cumsum(posterior) / posterior.sum()
    median, low, high = np.interp([0.5, 0.1572, 0.8427], cdf, s)
    return SigmaAdd(float(median), float(low), float(high))


def thin_component_residual(freqs_hz: np.ndarray, q: np.ndarray, u: np.ndarray, sigma: np.ndarray,
                            rm_rad_m2: float) -> np.ndarray:
    """Q and U less the Faraday-thin component at ``rm_rad_m2`` that fits them best (its complex
    amplitude by weighted least squares, the FDF of the weighted spectrum at that depth), divided by
    their noise ``sigma`` per channel: (2 nfreq,), NaN where a channel has no data. Fitting the
    amplitude rather than taking the FDF peak's keeps a bright simple source's residual at its
    noise: the peak of a spectrum with a spectral index is the amplitude at an effective frequency,
    a per cent off at nu0, which at SNR 1000 is a residual of several sigma."""
    lambda2 = lambda_squared(np.asarray(freqs_hz, dtype=np.float64))
    rotation = np.exp(2j * rm_rad_m2 * lambda2)
    data = np.asarray(q, dtype=np.float64) + 1j * np.asarray(u, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        weight = np.where(np.isfinite(data) & (sigma > 0), 1.0 / np.asarray(sigma, dtype=np.float64) ** 2, 0.0)
        if not weight.sum():
            return np.full(2 * len(lambda2), np.nan)
        amplitude = np.sum(weight * np.nan_to_num(data) * np.conj(rotation)) / weight.sum()
        left = (data - amplitude * rotation) / sigma
    return np.concatenate([left.real, left.imag])


def local_maxima(values: np.ndarray, box: int) -> np.ndarray:
    """Pixels of a map (ny, nx) that no other pixel within a ``box`` x ``box`` window around them
    exceeds; NaN is never a maximum. At the map's edge the window holds what the map has."""
    half = max(int(box), 1) // 2
    filled = np.where(np.isfinite(values), values, -np.inf)
    padded = np.pad(filled, half, constant_values=-np.inf)
    window_max = np.lib.stride_tricks.sliding_window_view(padded, (2 * half + 1, 2 * half + 1)).max(axis=(2, 3))
    return np.isfinite(values) & (filled >= window_max)


@dataclasses.dataclass
class FaradayBlock:
    """One spatial block through the whole Faraday-depth analysis (faraday_depth_block)."""

    peaks: dict                      # peak quantities of the block, each (npix,), and cc_moment2
    candidates: np.ndarray           # pixels at a local maximum of peak PI whose SNR reaches the candidate level
    dirty: np.ndarray                # (npix, nphi) complex64
    cleaned: CleanedRows | None      # RM-CLEAN of the pixels it cleaned, None without RM-CLEAN

    def spectra(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """The dirty FDF of ``rows`` and, with RM-CLEAN, their clean FDF and components, (len(rows), nphi)."""
        out = {"fdf_dirty": self.dirty[rows]}
        if self.cleaned is not None:
            out |= {"fdf_clean": self.cleaned.of(self.dirty, "clean", rows),
                    "clean_components": self.cleaned.of(self.dirty, "components", rows)}
        return out

    def components_found(self) -> tuple[int, int]:
        """(clean components, pixels cleaned)."""
        if self.cleaned is None:
            return 0, 0
        return int(np.count_nonzero(self.cleaned.components)), int(len(self.cleaned.rows))


def faraday_depth_block(q: np.ndarray, u: np.ndarray, grid: FaradayGrid, sigma_theory: float, *,
                        clean_cutoff: float | None, clean_gain: float = 0.1, clean_max_iter: int = 1000,
                        clean_mask: float | None = None, candidate_snr: float = 5.0,
                        matrix: np.ndarray | FourierSynthesis | None = None,
                        rmsf_doubled: np.ndarray | None = None, restore: np.ndarray | None = None,
                        shape: tuple[int, int] | None = None, candidate_box: int = 3,
                        scratch: Scratch | None = None, dirty: np.ndarray | None = None) -> FaradayBlock:
    """RM synthesis, RM-CLEAN (when ``clean_cutoff`` is given, |F| in Jy/beam; of the pixels whose
    dirty peak reaches ``clean_mask``, if given) and the FDF peaks of Q, U blocks (nchan, npix), in
    memory: the FDF of a block never has to be stored to be searched.

    The noise of each pixel's FDF is the robust rms of its RM-CLEAN residual (its dirty FDF where
    not cleaned) with RM-CLEAN, else ``sigma_theory``. The candidates are the pixels whose peak
    polarised intensity is the largest within ``candidate_box`` pixels (the block being a
    ``shape`` = (ny, nx) image; without a shape every pixel is its own neighbourhood) and whose SNR
    reaches ``candidate_snr``: a source, or a local top of diffuse emission, once, where every
    pixel of bright diffuse emission would otherwise be kept. Their peaks are refined exactly from
    Q and U (refine_peak, RM-CLEAN's other components peeled); the other pixels keep the
    parabola through the grid. ``scratch``: the working arrays (the dirty FDF, Q + iU, RM-CLEAN's)
    are its buffers, so the block's arrays are valid until the next block with it; ``dirty``: the
    FDF rows of Q, U where the caller has them already (synthesised once to set the RM-CLEAN cutoff
    from each spectrum's noise)."""
    if dirty is None:
        npix_q = q.shape[1]
        dirty = rm_synthesis_rows(q, u, grid, matrix, _scratch(scratch, "dirty", (npix_q, len(grid.phi)), np.complex64),
                                  _scratch(scratch, "p", (q.size,), np.complex64), scratch)
    npix = dirty.shape[0]
    stride = noise_stride(grid)
    phi_peak, peak, real, imag, valid, at_edge, index = _grid_peaks(dirty, grid, with_index=True)
    cleaned = None
    cc_moment2 = np.full(npix, np.nan)
    if clean_cutoff is not None:
        highest = np.where(valid, np.abs(dirty[np.arange(npix), np.maximum(index, 0)]), np.nan)
        cleaned = rm_clean_rows(dirty, grid, clean_cutoff, gain=clean_gain, max_iter=clean_max_iter,
                                rmsf_doubled=rmsf_doubled, mask=clean_mask, restore=restore, highest=highest,
                                scratch=scratch)
        sigma = robust_fdf_noise(dirty, stride, axis=1)
        rows = cleaned.rows
        if rows.size:
            sigma[rows] = robust_fdf_noise(cleaned.residual, stride, axis=1)
            found = _grid_peaks(cleaned.clean, grid)
            for whole, part in zip((phi_peak, peak, real, imag, valid, at_edge), found):
                whole[rows] = part
            cc_moment2[rows] = components_second_moment(cleaned.components, grid.phi)
    else:
        sigma = np.full(npix, sigma_theory)
    with np.errstate(invalid="ignore", divide="ignore"):
        bright = valid & (peak >= candidate_snr * sigma)
    if shape is not None:
        bright &= local_maxima(np.where(valid, peak, np.nan).reshape(shape), candidate_box).reshape(-1)
    candidates = np.nonzero(bright)[0]
    if candidates.size:
        channel_p = np.empty((q.shape[0], candidates.size), dtype=np.complex64)
        channel_p.real = q[:, candidates]
        channel_p.imag = u[:, candidates]
        components = None if cleaned is None else cleaned.of(dirty, "components", candidates)
        _refine_rows(candidates, phi_peak, peak, real, imag, channel_p, grid, components)
    peaks = peak_quantities(phi_peak, peak, real, imag, sigma, grid, valid, at_edge)
    peaks["cc_moment2"] = cc_moment2
    return FaradayBlock(peaks=peaks, candidates=candidates, dirty=dirty, cleaned=cleaned)
