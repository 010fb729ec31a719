"""Source finding and the polarised source catalogue (RMTable), and the workflow report."""

import numpy as np
import pytest

from conftest import REPO, run_snakemake, source_pixel
from spectropol.kernels.sources import background_and_rms, find_islands
from spectropol.kernels.stokes_i import fit_stokes_i, fit_stokes_i_pixels
from spectropol.stages.catalogue import RMTABLE_COLUMNS


def test_background_and_rms_are_robust_to_sources():
    rng = np.random.default_rng(0)
    image = 0.2 + 0.01 * rng.standard_normal((128, 128))
    y, x = np.mgrid[0:128, 0:128]
    for cy, cx in [(30, 40), (90, 100), (64, 64)]:
        image += 5.0 * np.exp(-0.5 * ((y - cy) ** 2 + (x - cx) ** 2) / 2.0**2)
    background, rms = background_and_rms(image, box=32)
    assert np.median(background) == pytest.approx(0.2, abs=0.002)
    assert np.median(rms) == pytest.approx(0.01, rel=0.1)
    islands = find_islands(image, 6.0, box=32)
    found = sorted((round(i.y), round(i.x)) for i in islands)
    assert found == [(30, 40), (64, 64), (90, 100)]


def test_stokes_i_model_order_and_errors():
    """A power law is fitted exactly; curvature makes order 2 win; at low SNR the errors describe
    the scatter (channels near zero kept, where a fit of log flux would drop them)."""
    rng = np.random.default_rng(1)
    freqs = np.linspace(120e6, 180e6, 30)
    x = np.log(freqs / 150e6)
    exact = fit_stokes_i(freqs, 2.0 * np.exp(-0.7 * x), np.full(30, 0.01), 150e6)
    assert exact.flux == pytest.approx(2.0, rel=1e-6) and exact.alpha == pytest.approx(-0.7, abs=1e-6)
    assert exact.order == 1 and 0 < exact.alpha_err < 0.05
    curved = fit_stokes_i(freqs, 2.0 * np.exp(-0.7 * x - 3.0 * x**2), np.full(30, 0.001), 150e6)
    assert curved.order == 2 and curved.coefficients[2] == pytest.approx(-3.0, rel=1e-3)
    pulls = []
    for _ in range(200):
        flux = 0.05 * np.exp(-0.7 * x) + rng.standard_normal(30) * 0.05  # SNR ~1 per channel
        model = fit_stokes_i(freqs, flux, np.full(30, 0.05), 150e6)
        pulls.append((model.flux - 0.05) / model.flux_err)
    assert abs(np.mean(pulls)) < 0.2 and 0.8 < np.std(pulls) < 1.25


def test_stokes_i_models_of_many_pixels_are_those_of_one_spectrum_at_a_time():
    """The one pass's vectorised fit (fit_stokes_i_pixels) against fit_stokes_i spectrum by
    spectrum, on 300 spectra from SNR 0.5 to 500 per channel, a third of them curved, some with blank
    channels: the same flux, spectral index and order."""
    rng = np.random.default_rng(4)
    freqs = np.linspace(120e6, 180e6, 40)
    x = np.log(freqs / 150e6)
    n = 300
    alpha, curvature = rng.uniform(-1.5, 0.5, n), np.where(rng.random(n) < 1 / 3, rng.uniform(-3, 3, n), 0.0)
    flux = 10 ** rng.uniform(-2.3, 0.7, n) * np.exp(alpha * x[:, None] + curvature * x[:, None] ** 2)
    flux += rng.normal(0, 0.01, flux.shape)
    flux[rng.random(flux.shape) < 0.05] = np.nan
    sigma = np.full(40, 0.01)
    together = fit_stokes_i_pixels(freqs, flux, sigma, 150e6)
    single = [fit_stokes_i(freqs, flux[:, k], sigma, 150e6) for k in range(n)]
    # where the pass fits (band-mean SNR >= 10) both reach the same optimum; fainter, where a
    # chosen order's model dips below zero, fit_stokes_i gives none and the vectorised fit the next
    band_snr = np.nanmean(flux, axis=0) / (0.01 / np.sqrt(np.isfinite(flux).sum(axis=0)))
    agree = [k for k, m in enumerate(single) if m.valid and band_snr[k] >= 10]
    assert len(agree) > 0.75 * n
    np.testing.assert_allclose(together["flux"][agree], [single[k].flux for k in agree], rtol=1e-7)
    np.testing.assert_allclose(together["alpha"][agree], [single[k].alpha for k in agree], atol=1e-7)
    assert (together["order"][agree] == [single[k].order for k in agree]).mean() > 0.99
    strongly_curved = np.abs(curvature) > 1.5
    assert (together["order"][strongly_curved & (flux[0] > 1)] == 2).all()


@pytest.fixture(scope="module")
def catalogue(tiny_run):
    from astropy.table import Table

    return Table.read(tiny_run / "results/catalogue/catalogue.vot")


@pytest.mark.slow
def test_catalogue_columns_and_units(catalogue, tiny_run):
    from astropy import units as u
    from astropy.table import Table

    assert set(RMTABLE_COLUMNS) <= set(catalogue.colnames)
    assert catalogue["ra"].unit == u.deg and catalogue["rm"].unit == u.Unit("rad/m2")
    assert catalogue["polint"].unit == u.Jy and catalogue["reffreq_pol"].unit == u.Hz
    for other, kind in (("catalogue.fits", "fits"), ("catalogue.ecsv", "ascii.ecsv"), ("catalogue.csv", "ascii.csv")):
        again = Table.read(tiny_run / "results/catalogue" / other, format=kind)
        assert len(again) == len(catalogue) and np.allclose(again["rm"], catalogue["rm"])


@pytest.mark.slow
def test_every_simulated_polarised_source_is_found_and_measured(catalogue, tiny_run, tiny_config, demo_sky):
    import xarray as xr

    cube = xr.open_zarr(tiny_run / "results/cube/cube.zarr")
    freqs = cube["freq"].values
    cell = tiny_config["imaging"]["cell_arcsec"]
    beam_px = float(np.median(cube["bmaj"].values)) * 3600 / cell
    reference_hz, sources = demo_sky
    matched = set()
    for source in sources:
        if source.pol_fraction == 0:
            continue
        x, y = source_pixel(source, tiny_config["imaging"]["size"], cell)
        distance = np.hypot(catalogue["x_pix"] - x, catalogue["y_pix"] - y)
        k = int(np.argmin(distance))
        assert distance[k] < 0.1 * beam_px, source.name  # position within a tenth of the beam
        row = catalogue[k]
        matched.add(k)
        assert row["snr_pol"] > 8
        assert abs(row["rm"] - source.rm_rad_m2) < 3 * row["rm_err"], source.name
        truth_pi = np.hypot(*[source.stokes(freqs, reference_hz)[s] for s in "QU"]).mean()
        assert row["polint"] == pytest.approx(truth_pi, rel=0.05), source.name
        assert row["spectral_index"] == pytest.approx(source.spectral_index, abs=0.1), source.name
    # false detections: no more than one per 100 beams of the field
    npix = tiny_config["imaging"]["size"]
    beams = npix**2 / (1.1331 * beam_px**2)
    false = len(catalogue) - len(matched)
    assert false <= beams / 100, f"{false} false detections in {beams:.0f} beams"


@pytest.mark.slow
def test_sky_model_of_the_detections_loads(tiny_run, catalogue):
    from spectropol.stages.simulate import load_sky_model

    reference_hz, sources = load_sky_model(tiny_run / "results/catalogue/skymodel.yaml")
    assert len(sources) == len(catalogue) and reference_hz > 0


@pytest.mark.slow
def test_report_builds(tiny_run):
    report = tiny_run / "report.html"
    run_snakemake(tiny_run, "--configfile", str(REPO / "tests/configs/tiny.yaml"), "--report", str(report))
    text = report.read_text(errors="replace")
    assert report.stat().st_size > 100_000
    for name in ("catalogue.csv", "maps.png", "fdf_spectra.png", "channel_qa.png"):
        assert name in text


@pytest.mark.parametrize("value, error, expected", [
    (-6.50342, 0.0012, "-6.5034 ± 0.0012 rad/m2"),    # first digits 120: two significant digits
    (123.456, 0.0456, "123.46 ± 0.05 rad/m2"),         # 456: one digit
    (123.456, 0.96, "123.5 ± 1.0 rad/m2"),             # 960: rounds up to 1000, two digits
    (0.012345, 0.000355, "0.0123 ± 0.0004 rad/m2"),    # 355: one digit
    (12345.6, 123.4, "12350 ± 120 rad/m2"),            # digits left of the point
    (-6.5, 0.0, "-6.5 rad/m2"),                        # an error that rounds to nothing is not printed
    (-6.5, float("nan"), "-6.5 rad/m2"),
])
def test_values_are_printed_to_the_digits_their_errors_allow(value, error, expected):
    from spectropol.plotting import format_measurement

    assert format_measurement(value, error, "rad/m2") == expected


@pytest.mark.slow
def test_report_maps_are_on_the_sky_with_the_beam_and_the_catalogue(tiny_run, catalogue, monkeypatch):
    """The report's figures, caught before they are written: every map on RA/Dec axes with a colour
    bar in its unit and the restoring beam at its size, the catalogue marked by its IDs, and a row
    per bright source whose titles print RM and PI with their errors."""
    from matplotlib.offsetbox import AnchoredOffsetbox
    from matplotlib.patches import Ellipse

    from spectropol.plotting import format_measurement
    from spectropol.stages import report
    from spectropol.stages.report import cube_beam

    def beam_ellipses(axis):  # what astropy's add_beam anchors in the corner
        return [child for box in axis.artists if isinstance(box, AnchoredOffsetbox)
                for child in box.get_child().get_children() if isinstance(child, Ellipse)]

    figures = {}
    monkeypatch.setattr(report, "_save", lambda fig, path: figures.__setitem__(str(path), fig))
    results = tiny_run / "results"
    out = {name: name for name in ("moments", "peak_rm", "rmsf", "maps", "spectra")}
    report.field_figures(results / "moments/moments.zarr", results / "faraday/peaks.zarr", out,
                         cube_store=results / "cube/cube.zarr")
    report.source_figures(results / "moments/moments.zarr", results / "faraday/peaks.zarr",
                          results / "faraday/fdf_candidates.zarr", results / "catalogue/catalogue.ecsv", out,
                          brightest=3, cube_store=results / "cube/cube.zarr")
    bmaj, bmin, _ = cube_beam(results / "cube/cube.zarr")
    for name in ("moments", "peak_rm", "maps"):
        sky = [axis for axis in figures[name].axes if hasattr(axis, "coords")]
        assert sky and all(axis.coords[0].coord_type == "longitude" and axis.coords[1].coord_type == "latitude"
                           for axis in sky), name
        bars = [axis.get_ylabel() for axis in figures[name].axes if not hasattr(axis, "coords")]
        assert "Jy/beam" in bars or "Faraday depth (rad m$^{-2}$)" in bars, name
        beams = [beam_ellipses(axis) for axis in sky]
        assert all(len(found) == 1 for found in beams), name  # one restoring beam per map
    maps_axis = [axis for axis in figures["maps"].axes if hasattr(axis, "coords")][0]
    pixel_deg = abs(maps_axis.wcs.wcs.cdelt[0])
    (ellipse,) = beam_ellipses(maps_axis)
    assert sorted([ellipse.width, ellipse.height]) == pytest.approx(sorted([bmin / pixel_deg, bmaj / pixel_deg]),
                                                                   rel=1e-6)
    assert {t.get_text() for t in maps_axis.texts} == {str(c) for c in catalogue["cat_id"]}
    brightest = catalogue.copy()
    brightest.sort("polint", reverse=True)
    titles = [axis.get_title() for axis in figures["spectra"].axes]
    for row in brightest[:3]:
        rm = format_measurement(row["rm"], row["rm_err"], "rad m$^{-2}$")
        assert any(title.startswith(f"RM {rm}, PI ") for title in titles), rm
        assert any(title == f"{row['cat_id']}: PI" for title in titles)
    assert not any(title.startswith(f"{brightest[3]['cat_id']}:") for title in titles)


@pytest.mark.slow
def test_report_table_and_provenance_pages(tiny_run, catalogue):
    """The catalogue page holds every source, brightest first, RM with its error to its digits; the
    provenance page names the workflow's commit as git does and the installed numpy."""
    import re
    import subprocess
    from importlib import metadata

    from spectropol.plotting import format_measurement

    table = (tiny_run / "results/report/catalogue.html").read_text()
    rows = re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1])
    assert len(rows) == len(catalogue)
    brightest = catalogue[int(np.argmax(catalogue["polint"]))]
    first = re.findall(r"<td data-value='[^']*'>([^<]*)</td>", rows[0])
    assert first[0] == str(brightest["cat_id"])
    assert format_measurement(brightest["rm"], brightest["rm_err"]) in first
    page = (tiny_run / "results/report/provenance.html").read_text()
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert f"<th>workflow commit</th><td>{commit.strip()}</td>" in page
    assert f"<th>numpy</th><td>{metadata.version('numpy')}</td>" in page
    assert "min_snr: 8" in page  # the configuration, as YAML


@pytest.mark.slow
def test_measured_spectra_of_every_source_are_kept(catalogue, tiny_run, tiny_config, demo_sky):
    """catalogue/spectra.fits holds a row per catalogued source with the spectra the catalogue
    measured: Stokes I within 2% of the simulated truth in every channel (median) and its fitted
    model within 2% everywhere, the polarised intensity within 3%, and noise columns at the images'
    level."""
    import xarray as xr

    from spectropol.stages.catalogue import read_spectra

    freqs, spectra = read_spectra(tiny_run / "results/catalogue/spectra.fits")
    cube = xr.open_zarr(tiny_run / "results/cube/cube.zarr")
    np.testing.assert_allclose(freqs, cube["freq"].values)
    assert set(spectra) == {str(c) for c in catalogue["cat_id"]}
    reference_hz, sources = demo_sky
    cell = tiny_config["imaging"]["cell_arcsec"]
    for source in sources:
        if source.pol_fraction == 0:
            continue
        x, y = source_pixel(source, tiny_config["imaging"]["size"], cell)
        row = catalogue[int(np.argmin(np.hypot(catalogue["x_pix"] - x, catalogue["y_pix"] - y)))]
        measured, truth = spectra[str(row["cat_id"])], source.stokes(freqs, reference_hz)
        assert np.median(np.abs(measured["I"] / truth["I"] - 1)) < 0.02, source.name
        assert np.max(np.abs(measured["I_model"] / truth["I"] - 1)) < 0.02, source.name  # the fitted model
        pi = np.hypot(measured["Q"], measured["U"]) / np.hypot(truth["Q"], truth["U"])
        assert np.median(np.abs(pi - 1)) < 0.03, source.name
        rms_q = cube["rms"].sel(stokes="Q").values
        assert 0.3 < np.median(measured["sigma_QU"] / rms_q) < 3.0, source.name
