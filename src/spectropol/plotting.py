"""What every figure of the report shares: sky maps on RA/Dec axes (astropy's WCSAxes) with the
restoring beam and a colour bar that says its unit, and numbers printed to the digits their errors
allow.

Measured values follow the Particle Data Group's rounding rule (PDG, Review of Particle Physics,
"Introduction", section 5.3): the error keeps two significant digits when its first three are 100
to 354, one from 355 to 949, and two (rounded up to 1000 -> 10) from 950 to 999; the value is
rounded to the same decimal place. An error that is zero, negative or not finite is not printed.
"""

from __future__ import annotations

import math

import numpy as np


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _error_digits(error: float) -> tuple[float, int]:
    """The error rounded by the PDG rule and the number of decimal places it is printed with."""
    exponent = math.floor(math.log10(error))
    leading = int(error / 10 ** (exponent - 2))  # the first three significant digits, 100..999
    if leading >= 950:  # rounds up to 1000: two digits of the next power of ten
        exponent += 1
        keep = 2
    else:
        keep = 2 if leading <= 354 else 1
    decimals = keep - 1 - exponent
    return round(error, decimals), decimals


def format_measurement(value: float, error: float, unit: str = "") -> str:
    """'value +- error unit' to the digits the error allows (module docstring); without a usable
    error the value to four significant digits."""
    suffix = f" {unit}" if unit else ""
    if not np.isfinite(value):
        return f"-{suffix}"
    if not (np.isfinite(error) and error > 0):
        return f"{value:.4g}{suffix}"
    rounded_error, decimals = _error_digits(float(error))
    if decimals > 0:
        return f"{value:.{decimals}f} ± {rounded_error:.{decimals}f}{suffix}"
    step = 10 ** (-decimals)
    return f"{round(value / step) * step:.0f} ± {round(rounded_error / step) * step:.0f}{suffix}"


def sky_axes(fig, position, wcs, title: str):
    """An RA/Dec panel of ``fig`` at ``position`` (a subplot spec or (rows, cols, index))."""
    args = position if isinstance(position, tuple) else (position,)
    axis = fig.add_subplot(*args, projection=wcs)
    axis.coords[0].set_axislabel("Right ascension (J2000)")
    axis.coords[1].set_axislabel("Declination (J2000)")
    axis.coords[0].set_major_formatter("hh:mm:ss")
    axis.coords[1].set_major_formatter("dd:mm:ss")
    axis.set_title(title, fontsize=10, pad=12)
    return axis


def show_map(fig, axis, image: np.ndarray, unit: str, cmap: str = "inferno", beam: tuple | None = None,
             stretch: str = "asinh"):
    """``image`` in ``axis`` with a colour bar labelled ``unit`` (stretch asinh from the noise floor
    to the brightest pixel, linear between the 1st and 99th percentiles, or symmetric about zero)
    and, where ``beam`` (bmaj, bmin,
    bpa in deg) is finite, the restoring beam as an ellipse in the lower left corner."""
    from astropy.visualization import AsinhStretch, ImageNormalize, LinearStretch

    finite = image[np.isfinite(image)]
    norm = None
    if finite.size and stretch == "symmetric":  # signed quantities (Faraday depth): zero in the middle
        extent = float(np.percentile(np.abs(finite), 99.5)) or 1.0
        norm = ImageNormalize(vmin=-extent, vmax=extent, stretch=LinearStretch())
    elif finite.size and stretch == "linear":
        low, high = (float(v) for v in np.percentile(finite, (1.0, 99.0)))
        norm = ImageNormalize(vmin=low, vmax=high if high > low else low + 1.0, stretch=LinearStretch())
    elif finite.size:
        # radio maps are mostly noise with a few bright sources: an asinh stretch from the noise
        # floor to the brightest pixel shows both, where a linear one shows only the sources
        low, high = float(np.percentile(finite, 0.5)), float(finite.max())
        norm = ImageNormalize(vmin=low, vmax=high if high > low else low + 1.0, stretch=AsinhStretch(0.01))
    shown = axis.imshow(image, origin="lower", cmap=cmap, interpolation="nearest", norm=norm)
    bar = fig.colorbar(shown, ax=axis, shrink=0.8, pad=0.02)
    bar.set_label(unit)
    if beam is not None and np.all(np.isfinite(beam)) and beam[0] > 0:
        from astropy import units as u
        from astropy.visualization.wcsaxes import add_beam

        add_beam(axis, major=beam[0] * u.deg, minor=beam[1] * u.deg, angle=beam[2] * u.deg, corner="bottom left",
                 frame=False, facecolor="none", edgecolor="cyan", lw=1.5)
    return shown


def show_cutout(fig, axis, image: np.ndarray, cell_arcsec: float, first_offset_px: tuple[int, int],
                beam: tuple | None = None) -> None:
    """A cut-out on axes of offset from the source (arcsec; RA offset increasing to the east, on the
    left), ``first_offset_px`` the (x, y) offset of its first pixel, with a colour bar in Jy/beam and
    the restoring beam (bmaj, bmin, bpa in deg, position angle east of north) in the lower left."""
    from matplotlib.patches import Ellipse

    ny, nx = image.shape
    x0, y0 = first_offset_px
    # pixel x grows to the west (CDELT1 < 0): the RA offset falls from left to right
    extent = (-(x0 - 0.5) * cell_arcsec, -(x0 + nx - 0.5) * cell_arcsec,
              (y0 - 0.5) * cell_arcsec, (y0 + ny - 0.5) * cell_arcsec)
    finite = image[np.isfinite(image)]
    limits = {"vmin": float(finite.min()), "vmax": float(finite.max())} if finite.size else {}
    shown = axis.imshow(image, origin="lower", cmap="inferno", interpolation="nearest", extent=extent, **limits)
    fig.colorbar(shown, ax=axis, shrink=0.8, pad=0.02).set_label("Jy/beam")
    axis.set_xlabel("RA offset (arcsec)", fontsize=8)
    axis.set_ylabel("Dec offset (arcsec)", fontsize=8)
    axis.tick_params(labelsize=7)
    if beam is not None and np.all(np.isfinite(beam)) and beam[0] > 0:
        major, minor = 3600.0 * beam[0], 3600.0 * beam[1]
        # the major axis at position angle bpa from north through east; the data x axis points east
        centre = (extent[0] - 0.6 * major * np.sign(extent[0] - extent[1]), extent[2] + 0.6 * major)
        axis.add_patch(Ellipse(centre, width=major, height=minor, angle=90.0 - beam[2], facecolor="none",
                               edgecolor="cyan", lw=1.5))
