"""Source measurement by fitting: a source's position and size from an elliptical Gaussian fitted to
a map, the restoring beam being its smallest shape, and each channel's flux from the model of that
shape at that position (forced photometry). Every per-source quantity is then taken at the fitted
sub-pixel position: read at the nearest pixel, a point source at 3 pixels per beam loses up to 8%
of its flux (half a pixel off the peak of a Gaussian of FWHM 3 pixels: exp(-4 ln2 / 36)^2).

Shapes are 2x2 covariances in pixel units, ordered (x, y): a Gaussian of covariance C centred at
(x0, y0) is exp(-d^T C^-1 d / 2) with d = (x - x0, y - y0). A source of intrinsic covariance S seen
through a beam B has the shape B + S and the integrated flux peak x sqrt(det(B + S) / det B).

Noise in a restored image is correlated over the beam: a least-squares fit over its pixels counts
each independent sample about (2/3) x (beam area in pixels) times. For a Gaussian template in noise
correlated with the same Gaussian, the variance of the fitted amplitude is (4/3) sigma^2 against
sigma^2 / sum(G^2) = sigma^2 / (pi sx sy) from the fit, so the fit's covariance is scaled by
(4/3) pi sx sy = (2/3) of the beam area in pixels (the idea of Condon 1997, PASP 109, 166).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .beam import FWHM_PER_SIGMA, beam_covariance

RESOLVED_SIGMA = 3.0  # a source is resolved when its integrated/peak ratio exceeds 1 by this many errors


def beam_covariance_px(bmaj_deg: float, bmin_deg: float, bpa_deg: float, cell_deg: float) -> np.ndarray:
    """The beam's covariance in pixels, (x, y) order: x grows westward (l = -x), y northward."""
    lm = beam_covariance({"bmaj_deg": bmaj_deg, "bmin_deg": bmin_deg, "bpa_deg": bpa_deg}) / cell_deg**2
    flip = np.diag([-1.0, 1.0])
    return flip @ lm @ flip


def gaussian_shape(covariance: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """exp(-d^T C^-1 d / 2) at offsets (dx, dy) (any matching shapes); C (..., 2, 2) broadcasts
    in front of them when the offsets carry matching leading axes."""
    inverse = np.linalg.inv(covariance)
    a, b, c = inverse[..., 0, 0], inverse[..., 0, 1], inverse[..., 1, 1]
    if np.ndim(a):
        a, b, c = (v.reshape(v.shape + (1,) * (dx.ndim - v.ndim)) for v in (a, b, c))
    return np.exp(-0.5 * (a * dx * dx + 2 * b * dx * dy + c * dy * dy))


def correlation_factor(beam_px: np.ndarray) -> float:
    """How many times a fit over the pixels counts each independent noise sample (see the module)."""
    beam_area_px = 2.0 * np.pi * np.sqrt(np.linalg.det(beam_px))
    return max(1.0, 2.0 / 3.0 * beam_area_px)


@dataclasses.dataclass(frozen=True)
class GaussianFit:
    """An elliptical Gaussian fitted to a map about a source (pixels, the map's units)."""

    x: float
    y: float
    x_err: float
    y_err: float
    peak: float
    peak_err: float
    integrated: float           # peak x sqrt(det(shape) / det(beam)); the peak where not resolved
    integrated_err: float
    shape: np.ndarray           # covariance of the fitted shape (pixels^2); the beam where not resolved
    size_ratio: float           # sqrt(det(fitted shape) / det(beam)) and its error
    size_ratio_err: float
    resolved: bool
    converged: bool

    def intrinsic(self, beam_px: np.ndarray) -> np.ndarray:
        """The source's own covariance (the fitted shape less the beam; zero where not resolved)."""
        if not self.resolved:
            return np.zeros((2, 2))
        values, vectors = np.linalg.eigh(self.shape - beam_px)
        return vectors @ np.diag(np.clip(values, 0.0, None)) @ vectors.T


def fit_window(image: np.ndarray, x0: float, y0: float, beam_px: np.ndarray, radius_fwhm: float = 1.0):
    """The pixels within ``radius_fwhm`` beam major-axis FWHMs of (x0, y0), finite only: (x, y, values)."""
    major_px = float(np.sqrt(np.linalg.eigvalsh(beam_px)[-1])) * FWHM_PER_SIGMA
    half = max(2, int(np.ceil(radius_fwhm * major_px)))
    ny, nx = image.shape
    ys = slice(max(0, int(round(y0)) - half), min(ny, int(round(y0)) + half + 1))
    xs = slice(max(0, int(round(x0)) - half), min(nx, int(round(x0)) + half + 1))
    yy, xx = np.mgrid[ys, xs]
    values = image[ys, xs]
    keep = np.isfinite(values) & (np.hypot(xx - x0, yy - y0) <= radius_fwhm * major_px)
    return xx[keep].astype(np.float64), yy[keep].astype(np.float64), values[keep].astype(np.float64)


def fit_gaussian(image: np.ndarray, x0: float, y0: float, beam_px: np.ndarray, rms: float,
                 radius_fwhm: float = 1.5, *, size: bool = True) -> GaussianFit:
    """Fit a source near pixel (x0, y0) of ``image`` (rms ``rms`` per pixel) with a Gaussian.

    Two fits (scipy least squares): a point source (amplitude and position, the beam's shape), and
    a Gaussian of free shape (its Cholesky factor, so that the shape stays a covariance; smaller
    than the beam allowed, so that noise scatters the size ratio both ways about 1 instead of
    piling up at the beam). The source is resolved when sqrt(det shape / det beam) exceeds 1 by
    RESOLVED_SIGMA errors; then the free fit gives the peak and integrated flux, else the point fit
    gives both. Errors from the fits' covariances, scaled for the noise correlated over the beam.
    ``size`` False: the point-source fit alone (a position), a fifth of the time.
    """
    from scipy.optimize import least_squares

    nan = float("nan")
    failed = GaussianFit(x0, y0, nan, nan, nan, nan, nan, nan, beam_px, nan, nan, False, False)
    xx, yy, values = fit_window(image, x0, y0, beam_px, radius_fwhm)
    if values.size < 6:
        return failed
    inside = np.hypot(xx - x0, yy - y0) <= 1.0
    start_peak = float(values[inside].max()) if inside.any() else float(values.max())
    scale = rms * np.sqrt(correlation_factor(beam_px))

    inverse = np.linalg.inv(beam_px)

    def point(p):
        return (p[0] * gaussian_shape(beam_px, xx - p[1], yy - p[2]) - values) / rms

    def point_jacobian(p):
        shape = gaussian_shape(beam_px, xx - p[1], yy - p[2])
        gx, gy = inverse @ np.vstack([xx - p[1], yy - p[2]])  # d(exponent)/d(centre) = C^-1 d
        return np.column_stack([shape, p[0] * shape * gx, p[0] * shape * gy]) / rms

    try:
        first = least_squares(point, [start_peak, x0, y0], jac=point_jacobian, method="lm")
    except (ValueError, np.linalg.LinAlgError):  # residuals not finite: nothing there to fit
        return failed
    amplitude, x, y = first.x
    covariance = _covariance(first.jac) * scale**2 / rms**2
    errors = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
    point_fit = GaussianFit(float(x), float(y), float(errors[1]), float(errors[2]), float(amplitude), float(errors[0]),
                            float(amplitude), float(errors[0]), beam_px, nan, nan, False,
                            bool(first.success and np.all(np.isfinite(first.x))))
    if not size:
        return point_fit

    lower = np.linalg.cholesky(beam_px)
    # the shape's Cholesky factor, its diagonal as logs kept within 1/10 and 30 times the beam's,
    # so that a fit running away on noise stays a covariance instead of an overflow
    bounds = [(np.log(lower[k, k]) - np.log(10.0), np.log(lower[k, k]) + np.log(30.0)) for k in (0, 1)]

    def free(p):
        factor = np.array([[np.exp(np.clip(p[3], *bounds[0])), 0.0], [p[4], np.exp(np.clip(p[5], *bounds[1]))]])
        return (p[0] * gaussian_shape(factor @ factor.T, xx - p[1], yy - p[2]) - values) / rms

    try:
        second = least_squares(free, [amplitude, x, y, np.log(lower[0, 0]), lower[1, 0], np.log(lower[1, 1])],
                               method="lm")
    except (ValueError, np.linalg.LinAlgError):
        return point_fit
    p = second.x
    if not (second.success and np.all(np.isfinite(p))):
        return point_fit
    factor = np.array([[np.exp(np.clip(p[3], *bounds[0])), 0.0], [p[4], np.exp(np.clip(p[5], *bounds[1]))]])
    shape = factor @ factor.T
    free_cov = _covariance(second.jac) * scale**2 / rms**2
    # sqrt(det shape) = exp(p3 + p5): the log of the size ratio is p3 + p5 - log sqrt(det beam)
    ratio = float(np.sqrt(np.linalg.det(shape) / np.linalg.det(beam_px)))
    ratio_err = ratio * float(np.sqrt(max(free_cov[3, 3] + free_cov[5, 5] + 2 * free_cov[3, 5], 0.0)))
    resolved = bool(np.isfinite(ratio_err) and ratio - 1.0 > RESOLVED_SIGMA * ratio_err)
    if resolved:
        free_err = np.sqrt(np.clip(np.diag(free_cov), 0.0, None))
        integrated = p[0] * ratio
        integrated_err = integrated * float(np.hypot(free_err[0] / max(abs(p[0]), 1e-30), ratio_err / ratio))
        return GaussianFit(float(p[1]), float(p[2]), float(free_err[1]), float(free_err[2]), float(p[0]),
                           float(free_err[0]), float(integrated), integrated_err, shape, ratio, ratio_err, True, True)
    return dataclasses.replace(point_fit, size_ratio=ratio, size_ratio_err=ratio_err)


def _covariance(jacobian: np.ndarray) -> np.ndarray:
    """(J^T J)^-1 of a least-squares fit of residuals in units of the noise; NaN where singular."""
    try:
        return np.linalg.inv(jacobian.T @ jacobian)
    except np.linalg.LinAlgError:
        return np.full((jacobian.shape[1],) * 2, np.nan)


def forced_fluxes(planes: np.ndarray, x: float, y: float, shapes: np.ndarray, x_first: int = 0,
                  y_first: int = 0, beams: np.ndarray | None = None, radius_px: float | None = None,
                  neighbours: list[tuple[float, float, np.ndarray]] = ()) -> tuple[np.ndarray, np.ndarray]:
    """The amplitude of a source's model in each plane at (x, y), fitted by least squares over the
    pixels within ``radius_px`` (default: the largest shape's FWHM), NaN pixels left out, and its
    noise in units of the plane's rms. planes (nplane, ny, nx), or (nplane, nset, ny, nx) for several
    images of one geometry (Stokes I, Q, U: the model and its noise are worked out once; the fluxes
    then come back (nplane, nset), and so do their noises), is a cut-out whose first pixel is
    (x_first, y_first) of the map; shapes (nplane, 2, 2) or (2, 2) the covariance of the source seen
    through each plane's beam, ``beams`` those beams (default: the shapes, a point source).
    ``neighbours`` (x, y, shapes) are fitted with it, so that a brighter source nearby does not add
    the wing of its beam to this one's flux (more at low frequencies, where the beam is wider: a
    steeper spectrum).

    For a point source the amplitude is the peak flux at its true position, whatever the sub-pixel
    offset. The noise is that of the fit in noise correlated like the beam (a restored image's):
    for one source sqrt(G^T K G) / G^T G with K the beam between every two pixels of the window,
    2/sqrt(3) for a point source over an unbounded window, and here exact for the window and shapes."""
    shapes = np.broadcast_to(np.asarray(shapes, dtype=np.float64), (planes.shape[0], 2, 2))
    beams = shapes if beams is None else np.broadcast_to(np.asarray(beams, dtype=np.float64), shapes.shape)
    if radius_px is None:
        radius_px = float(np.sqrt(np.linalg.eigvalsh(shapes).max())) * FWHM_PER_SIGMA
    single = planes.ndim == 3
    ny, nx = planes.shape[-2:]
    yy, xx = np.mgrid[y_first:y_first + ny, x_first:x_first + nx]
    near = np.hypot(xx - x, yy - y) <= radius_px
    px, py = xx[near].astype(np.float64), yy[near].astype(np.float64)  # (npix,)
    data = np.asarray(planes, dtype=np.float64)[..., near]  # (nplane, [nset,] npix)
    data = data[:, None, :] if single else data  # (nplane, nset, npix)
    finite = np.isfinite(data)
    if not (finite == finite[:, :1]).all():
        # images of the set blank in different places (a Stokes the correlations do not give): each
        # its own fit, so that one's blanks do not blank the others
        parts = [forced_fluxes(planes[:, k], x, y, shapes, x_first, y_first, beams, radius_px, neighbours)
                 for k in range(data.shape[1])]
        return np.stack([f for f, _ in parts], axis=1), np.stack([e for _, e in parts], axis=1)
    usable = finite[:, 0]
    npl, npix = usable.shape
    sources = [(x, y, shapes)] + [(nx_, ny_, np.broadcast_to(np.asarray(s, dtype=np.float64), shapes.shape))
                                  for nx_, ny_, s in neighbours]
    model = np.stack([gaussian_shape(s, np.broadcast_to(px - sx, (npl, npix)), np.broadcast_to(py - sy, (npl, npix)))
                      for sx, sy, s in sources], axis=1)  # (nplane, nsource, npix)
    model = np.where(usable[:, None, :], model, 0.0)
    normal = np.einsum("psi,pti->pst", model, model)
    projected = np.einsum("psi,pki->pks", model, np.where(usable[:, None, :], data, 0.0))
    ddx, ddy = px[:, None] - px[None, :], py[:, None] - py[None, :]
    unique, index = np.unique(beams, axis=0, return_inverse=True)
    correlated = np.empty((npl, len(sources), len(sources)))
    for k, beam in enumerate(unique):  # usually one beam, or one per channel of a cube without a common one
        kernel = gaussian_shape(beam, ddx, ddy)
        chosen = np.nonzero(index.reshape(-1) == k)[0]
        correlated[chosen] = np.einsum("psi,ij,ptj->pst", model[chosen], kernel, model[chosen])
    flux = np.full((npl, data.shape[1]), np.nan)
    noise = np.full(npl, np.nan)
    solvable = np.linalg.det(normal) > 0
    if solvable.any():
        inverse = np.linalg.inv(normal[solvable])
        flux[solvable] = np.einsum("ps,pks->pk", inverse[:, 0, :], projected[solvable])
        covariance = np.einsum("ps,pst,pt->p", inverse[:, 0, :], correlated[solvable], inverse[:, 0, :])
        noise[solvable] = np.sqrt(covariance)
    if single:
        return flux[:, 0], noise
    return flux, np.repeat(noise[:, None], data.shape[1], axis=1)
