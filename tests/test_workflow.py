"""End to end: the workflow on a tiny simulated observation, checked against the simulated truth."""

import json
import warnings

import numpy as np
import pytest

from conftest import REPO, channel_path, run_snakemake, source_pixel
from spectropol.stages.faraday import PEAK_MAPS

pytestmark = pytest.mark.slow

STOKES = ["I", "Q", "U", "V"]


@pytest.fixture(scope="module")
def cube(tiny_run):
    import xarray as xr

    return xr.open_zarr(tiny_run / "results/cube/cube.zarr").load()


def test_cube_is_a_labelled_dataset(cube, tiny_config):
    nchan = tiny_config["simulate"]["nchan"]
    npix = tiny_config["imaging"]["size"]
    assert cube.attrs["image"] == "restored"  # the tiny config cleans
    assert cube["restored"].dims == ("freq", "stokes", "y", "x")
    assert cube["restored"].shape == (nchan, 4, npix, npix)
    assert list(cube["stokes"].values) == STOKES
    expected = tiny_config["simulate"]["start_freq_hz"] + tiny_config["simulate"]["chan_width_hz"] * np.arange(nchan)
    np.testing.assert_allclose(cube["freq"].values, expected)
    assert cube.attrs["wcs"]["CTYPE1"] == "RA---SIN"
    assert cube.attrs["provenance"]["software"] == "spectropol"
    assert np.all(cube["bmaj"].values > cube["bmin"].values * 0.99)


def test_channel_stores_hold_what_the_cube_reads_and_what_was_asked(tiny_run, tiny_config):
    # restored (the cube's image) and dirty (imaging.keep_images); the model, residual and PSF are
    # made and described in QA, not stored
    import zarr

    for channel in range(tiny_config["simulate"]["nchan"]):
        group = zarr.open_group(channel_path(tiny_run, "results/channels", channel), mode="r")
        assert set(group.array_keys()) == {"restored", "dirty", "stokes"}
        document = json.loads(channel_path(tiny_run, "results/qa/image", channel).read_text())
        assert document["clean"]["iterations"] > 0 and document["restored"]["I"]["peak"] > 0


@pytest.fixture(scope="module")
def dirty_cube(tiny_run, tiny_config):
    """(freq, stokes, y, x) dirty images, from the channel stores."""
    import xarray as xr

    nchan = tiny_config["simulate"]["nchan"]
    return np.stack([xr.open_zarr(channel_path(tiny_run, "results/channels", c))["dirty"].values
                     for c in range(nchan)])


@pytest.mark.parametrize("kind", ["dirty", "restored"])
def test_sources_at_their_pixels_with_true_stokes(cube, dirty_cube, tiny_config, demo_sky, kind):
    # Each source's peak is on its true pixel, and at that pixel I is within 5% of the true I and
    # Q, U within 5% of the true polarised flux, in every channel. The PSF peaks at 1, so a point
    # source's dirty value is its flux; sidelobes of the other sources are what is left, and
    # CLEAN removes them from the restored images.
    reference_hz, sources = demo_sky
    npix = tiny_config["imaging"]["size"]
    freqs = cube["freq"].values
    images = dirty_cube if kind == "dirty" else cube["restored"].values
    for source in sources:
        x, y = source_pixel(source, npix, tiny_config["imaging"]["cell_arcsec"])
        truth = source.stokes(freqs, reference_hz)
        stamp = images[:, 0, y - 5 : y + 6, x - 5 : x + 6].mean(axis=0)
        assert np.unravel_index(np.argmax(stamp), stamp.shape) == (5, 5), source.name
        measured = {s: images[:, k, y, x] for k, s in enumerate(STOKES)}
        np.testing.assert_array_less(np.abs(measured["I"] - truth["I"]), 0.05 * truth["I"], err_msg=source.name)
        pol = np.hypot(truth["Q"], truth["U"])
        if source.pol_fraction > 0:
            for s in ("Q", "U"):
                np.testing.assert_array_less(np.abs(measured[s] - truth[s]), 0.05 * pol, err_msg=f"{source.name} {s}")


def test_world_coordinates_of_source_pixels(tiny_run, tiny_config, demo_sky):
    # The FITS WCS puts each source's pixel at its sky position (SIN projection of its l, m offset).
    from astropy.io import fits
    from astropy.wcs import WCS

    with fits.open(tiny_run / "results/cube/cube_I.fits") as hdus:
        wcs = WCS(hdus[0].header).celestial
    ra0, dec0 = np.deg2rad(tiny_config["simulate"]["ra_deg"]), np.deg2rad(tiny_config["simulate"]["dec_deg"])
    for source in demo_sky[1]:
        x, y = source_pixel(source, tiny_config["imaging"]["size"], tiny_config["imaging"]["cell_arcsec"])
        ra, dec = wcs.wcs_pix2world([[x, y]], 0)[0]
        n = np.sqrt(1 - source.l**2 - source.m**2)
        dec_true = np.arcsin(source.m * np.cos(dec0) + n * np.sin(dec0))
        ra_true = ra0 + np.arctan2(source.l, n * np.cos(dec0) - source.m * np.sin(dec0))
        assert ra == pytest.approx(np.rad2deg(ra_true) % 360, abs=1e-6)
        assert dec == pytest.approx(np.rad2deg(dec_true), abs=1e-6)


def test_fits_cubes_read_without_warnings(tiny_run, cube):
    from astropy.io import fits
    from astropy.wcs import WCS

    for k, stokes in enumerate(STOKES):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with fits.open(tiny_run / f"results/cube/cube_{stokes}.fits") as hdus:
                header = hdus[0].header
                wcs = WCS(header)
                data = hdus[0].data.copy()
                beams = hdus["BEAMS"].data.copy()
        assert list(wcs.wcs.ctype) == ["RA---SIN", "DEC--SIN", "FREQ", "STOKES"]
        assert header["BUNIT"] == "Jy/beam" and header["CRVAL4"] == k + 1
        assert header["BMAJ"] == pytest.approx(cube["bmaj"].max().item())
        np.testing.assert_array_equal(data[0], cube["restored"].values[:, k])
        np.testing.assert_allclose(beams["BMAJ"], cube["bmaj"].values * 3600, rtol=1e-6)


def test_moment_maps_peak_at_polarised_sources(tiny_run, tiny_config, demo_sky):
    from astropy.io import fits

    polarised = [source_pixel(s, tiny_config["imaging"]["size"], tiny_config["imaging"]["cell_arcsec"])
                 for s in demo_sky[1] if s.pol_fraction > 0]
    unpolarised = [source_pixel(s, tiny_config["imaging"]["size"], tiny_config["imaging"]["cell_arcsec"])
                   for s in demo_sky[1] if s.pol_fraction == 0]
    # P std is left out: the beam shrinks with frequency, so P varies most on the flanks of a source.
    for quantity, moment in [("P", "mean"), ("Q", "std"), ("U", "std")]:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            plane = fits.getdata(tiny_run / f"results/moments/{quantity}_{moment}.fits")
        y, x = np.unravel_index(np.nanargmax(plane), plane.shape)
        assert min(abs(x - px) + abs(y - py) for px, py in polarised) <= 1, (quantity, moment)
    p_mean = fits.getdata(tiny_run / "results/moments/P_mean.fits")
    noise = 1.4826 * np.nanmedian(np.abs(p_mean - np.nanmedian(p_mean)))
    for px, py in polarised:
        assert p_mean[py, px] > 10 * noise
    for px, py in unpolarised:  # bright in I, nothing in P
        assert p_mean[py, px] < max(p_mean[py, px] for px, py in polarised) / 5


def test_every_job_left_qa_and_logs(tiny_run, tiny_config):
    nchan = tiny_config["simulate"]["nchan"]
    images = sorted((tiny_run / "results/qa/image").glob("*/*.json"))
    assert [p.stem for p in images] == [f"{c:05d}" for c in range(nchan)]
    document = json.loads(images[0].read_text())
    assert document["schema_version"] == "1.0" and document["kind"] == "channel_image"
    assert set(document["stokes"]) == set(STOKES)
    assert document["stokes"]["I"]["peak"] > 0 and document["beam"]["bmaj_deg"] > 0
    assert json.loads((tiny_run / "results/qa/cube.json").read_text())["flagged_channels"] == []
    # every channel's image job logged its channel once, whatever the blocks
    logs = "".join(p.read_text() for p in (tiny_run / "logs/image_channel").glob("*.log"))
    assert logs.count("Stokes I peak") == nchan


def test_rerun_is_a_no_op(tiny_run):
    result = run_snakemake(tiny_run, "--configfile", str(REPO / "tests/configs/tiny.yaml"), "-n")
    assert "Nothing to be done" in result.stdout + result.stderr


def test_qa_documents_follow_the_schema(tiny_run):
    import jsonschema

    from spectropol.qa.documents import schema as packaged_schema

    schema = packaged_schema("qa")  # as installed with the package
    # summary.json is the qa_summary rule's aggregate of these, not a job's QA document
    documents = sorted(p for p in (tiny_run / "results/qa").rglob("*.json") if p.name != "summary.json")
    kinds = set()
    for path in documents:
        document = json.loads(path.read_text())
        jsonschema.validate(document, schema)
        kinds.add(document["kind"])
    assert kinds == {"split", "channel_image", "cube", "moments", "faraday_depth", "catalogue"}
    bad = json.loads(documents[0].read_text()) | {"schema_version": "0.9"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_faraday_depth_of_each_source_within_three_sigma(tiny_run, tiny_config, demo_sky):
    # The peak of the clean FDF at each polarised source: RM and derotated angle within 3 sigma of
    # their quoted errors, debiased polarised intensity within 5% of the band-averaged truth; the
    # unpolarised source shows no peak above 8 sigma.
    import xarray as xr

    peaks = xr.open_zarr(tiny_run / "results/faraday/peaks.zarr").load()
    freqs = xr.open_zarr(tiny_run / "results/cube/cube.zarr")["freq"].values
    reference_hz, sources = demo_sky
    for source in sources:
        x, y = source_pixel(source, tiny_config["imaging"]["size"], tiny_config["imaging"]["cell_arcsec"])
        at = {name: float(peaks[name].values[y, x]) for name in PEAK_MAPS}
        if source.pol_fraction == 0:
            assert at["snr"] < 8, source.name
            continue
        assert abs(at["peak_phi"] - source.rm_rad_m2) < 3 * at["peak_phi_err"], source.name
        angle_error = (at["pol_angle0_deg"] - source.pol_angle_deg + 90) % 180 - 90
        assert abs(angle_error) < 3 * at["pol_angle0_err_deg"], source.name
        truth = source.stokes(freqs, reference_hz)
        assert at["peak_pi_debiased"] == pytest.approx(np.hypot(truth["Q"], truth["U"]).mean(), rel=0.05), source.name


def test_faraday_fits_products_read_without_warnings(tiny_run):
    from astropy.io import fits
    from astropy.wcs import WCS

    products = sorted((tiny_run / "results/faraday").glob("*.fits"))
    names = {p.stem for p in products}
    assert {"fdf_dirty_amplitude", "fdf_clean_real", "fdf_clean_imag", "rmsf", "peak_phi", "peak_pi_debiased"} <= names
    for path in products:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with fits.open(path) as hdus:
                if path.stem != "rmsf":
                    WCS(hdus[0].header)


def test_faraday_depth_memory_stays_below_its_request(tiny_run):
    # The memory the rule asks for (from its tile size) against the peak Snakemake measured for the
    # job (logs/benchmark); the same check on a 1024^2 cube is in test_faraday_cube.py.
    import csv
    import re

    text = "\n".join(p.read_text() for p in sorted((tiny_run / ".snakemake/log").glob("*.log")))
    block = text[text.index("rule faraday_depth:"):]
    request = int(re.search(r"mem_mb=(\d+)", block[:block.index("Finished jobid")]).group(1))
    with open(tiny_run / "logs/benchmark/faraday_depth.tsv") as handle:
        measured = float(next(csv.DictReader(handle, delimiter="\t"))["max_rss"])
    assert 0 < measured <= request
