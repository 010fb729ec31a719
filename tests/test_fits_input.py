"""The Faraday half from FITS images made elsewhere: cubes with a FREQ axis (either direction), one
image per channel (WSClean), frequencies from a text file as RM-Tools reads them, NaN blanks; the
FDF against rmsynth3d on the same files, and WSClean's images of the tiny MS through our Faraday
and catalogue stages against the simulated truth (imaging and measurement judged apart)."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import has_wsclean, source_pixel
from spectropol.errors import SpectropolError
from spectropol.io.cube import open_cube
from spectropol.kernels.faraday import lambda_squared
from spectropol.stages.cube import cube_from_fits

NCHAN, SIZE = 24, 32


def write_fits(path, data, freqs=None, stokes=None, beam=None, cdelt=None):
    """A FITS image (RA, DEC[, FREQ][, STOKES]) of ``data`` (nfreq, ny, nx), WSClean-like keywords."""
    from astropy.io import fits

    nfreq, ny, nx = data.shape
    header = {"CTYPE1": "RA---SIN", "CRVAL1": 60.0, "CRPIX1": nx // 2 + 1, "CDELT1": -0.005, "CUNIT1": "deg",
              "CTYPE2": "DEC--SIN", "CRVAL2": -30.0, "CRPIX2": ny // 2 + 1, "CDELT2": 0.005,
              "CUNIT2": "deg", "RADESYS": "FK5", "EQUINOX": 2000.0, "BUNIT": "JY/BEAM"}
    if freqs is not None:
        header |= {"CTYPE3": "FREQ", "CRPIX3": 1.0, "CRVAL3": float(freqs[0]),
                   "CDELT3": float(cdelt if cdelt is not None else (freqs[1] - freqs[0] if nfreq > 1 else 1e6)),
                   "CUNIT3": "Hz"}
    array = data
    if stokes is not None:
        header |= {"CTYPE4": "STOKES", "CRPIX4": 1.0, "CRVAL4": float("IQUV".index(stokes) + 1), "CDELT4": 1.0}
        array = data[None]
    if beam is not None:
        header |= {"BMAJ": beam[0], "BMIN": beam[1], "BPA": beam[2]}
    fits.PrimaryHDU(np.asarray(array, dtype=np.float32), fits.Header(header)).writeto(path)


def polarised_field(seed=2, sigma=0.004):
    """Q, U (nfreq, ny, nx) of three thin sources on noise, increasing frequencies, and the truth."""
    rng = np.random.default_rng(seed)
    freqs = np.linspace(120e6, 168e6, NCHAN)
    l2 = lambda_squared(freqs)
    q = sigma * rng.standard_normal((NCHAN, SIZE, SIZE))
    u = sigma * rng.standard_normal((NCHAN, SIZE, SIZE))
    truth = [(5, 7, 0.3, 4.2, 30.0), (20, 11, 0.2, -12.5, 100.0), (26, 27, 0.15, 31.0, 160.0)]  # x, y, P, RM, chi0
    for x, y, p, rm, chi0 in truth:
        pol = p * np.exp(2j * (np.deg2rad(chi0) + rm * l2))
        q[:, y, x] += pol.real
        u[:, y, x] += pol.imag
    return freqs, q, u, truth


def test_a_decreasing_frequency_cube_enters_in_increasing_order(tmp_path):
    freqs, q, u, _ = polarised_field()
    down = freqs[::-1]
    write_fits(tmp_path / "q.fits", q[::-1], down, stokes="Q", beam=(0.02, 0.015, 30.0))
    write_fits(tmp_path / "u.fits", u[::-1], down, stokes="U", beam=(0.02, 0.015, 30.0))
    result = cube_from_fits({"Q": [tmp_path / "q.fits"], "U": [tmp_path / "u.fits"]}, tmp_path / "cube.zarr",
                            tmp_path / "cube.json")
    cube = open_cube(tmp_path / "cube.zarr")
    np.testing.assert_allclose(cube["freq"].values, freqs)
    np.testing.assert_array_equal(cube["image"].sel(stokes="Q").values, q.astype(np.float32))
    np.testing.assert_array_equal(cube["image"].sel(stokes="U").values, u.astype(np.float32))
    assert np.isnan(cube["image"].sel(stokes="I").values).all()  # not given: NaN, and said so
    assert cube.attrs["stokes_present"] == ["Q", "U"]
    assert cube["source_channel"].values.tolist() == list(range(NCHAN - 1, -1, -1))
    np.testing.assert_allclose(cube["bmaj"].values, 0.02)
    assert result.channels == NCHAN and result.flagged_channels == []
    assert cube.attrs["wcs"]["CDELT2"] == 0.005 and cube.attrs["wcs"]["CTYPE1"] == "RA---SIN"


def test_channel_images_and_a_frequency_file(tmp_path):
    # WSClean's layout, one file per channel and Stokes, given in a shuffled order; then a 3-D cube
    # with no FREQ axis keyword set, with frequencies from a text file (RM-Tools' format).
    freqs, q, u, _ = polarised_field()
    files = {"Q": [], "U": []}
    for c in np.random.default_rng(0).permutation(NCHAN):
        for stokes, data in (("Q", q), ("U", u)):
            path = tmp_path / f"wsc-{c:04d}-{stokes}-image.fits"
            write_fits(path, data[c:c + 1], freqs[c:c + 1], stokes=stokes)
            files[stokes].append(path)
    cube_from_fits(files, tmp_path / "channels.zarr", tmp_path / "a.json")
    channels = open_cube(tmp_path / "channels.zarr")
    np.testing.assert_allclose(channels["freq"].values, freqs)
    np.testing.assert_array_equal(channels["image"].sel(stokes="Q").values, q.astype(np.float32))

    write_fits(tmp_path / "q3.fits", q)
    write_fits(tmp_path / "u3.fits", u)
    (tmp_path / "freqs.txt").write_text("# Hz\n" + "\n".join(f"{f:.1f}" for f in freqs) + "\n")
    cube_from_fits({"Q": [tmp_path / "q3.fits"], "U": [tmp_path / "u3.fits"]}, tmp_path / "file.zarr",
                   tmp_path / "b.json", freqs_file=tmp_path / "freqs.txt")
    np.testing.assert_array_equal(open_cube(tmp_path / "file.zarr")["image"].values,
                                  channels["image"].values)


def test_bad_fits_input_is_refused_in_one_line(tmp_path):
    freqs, q, u, _ = polarised_field()
    write_fits(tmp_path / "q.fits", q, freqs)
    write_fits(tmp_path / "u_other.fits", u, freqs + 1e6)
    write_fits(tmp_path / "q_nofreq.fits", q)
    write_fits(tmp_path / "u_small.fits", u[:, :16, :16], freqs)
    cases = [
        ({"Q": ["q.fits"], "U": ["u_other.fits"]}, None, "u_other.fits: Stokes U has 24 planes at other frequencies"),
        ({"Q": ["q_nofreq.fits"], "U": ["q_nofreq.fits"]}, None, "q_nofreq.fits: has no FREQ axis; give the freq"),
        ({"Q": ["q.fits"], "U": ["u_small.fits"]}, None, "u_small.fits: Stokes U images are 16x16 pixels"),
        ({"Q": ["q.fits"]}, None, "needs FITS images of Stokes U"),
        ({"Q": ["q.fits"], "U": ["q.fits"]}, "short.txt",
         "q.fits: has 24 channel planes but the frequency list gives 3"),
    ]
    (tmp_path / "short.txt").write_text("1.2e8\n1.3e8\n1.4e8\n")
    for inputs, freqs_file, message in cases:
        paths = {s: [tmp_path / p for p in ps] for s, ps in inputs.items()}
        with pytest.raises(SpectropolError) as error:
            cube_from_fits(paths, tmp_path / "cube.zarr", tmp_path / "cube.json",
                           freqs_file=tmp_path / freqs_file if freqs_file else None)
        text = str(error.value)
        assert message in text and "\n" not in text, text
        assert not (tmp_path / "cube.zarr").exists()  # nothing that looks complete


def test_faraday_command_matches_rmsynth3d_on_the_same_files(tmp_path):
    # The files as an RM-Tools user has them: Q and U cubes and a frequency file; `spectropol
    # faraday` and rmsynth3d on the same phi grid. The dirty FDFs agree to 1e-4 of the peak, each
    # source's exact peak is within 3 sigma of the truth, and the blanked pixels stay blank.
    from astropy.io import fits
    from astropy.table import Table

    rmsynth3d = shutil.which("rmsynth3d", path=str(Path(sys.executable).parent))
    if rmsynth3d is None:
        pytest.skip("rm-tools not installed")
    freqs, q, u, truth = polarised_field()
    write_fits(tmp_path / "Q.fits", q, freqs)
    write_fits(tmp_path / "U.fits", u, freqs)
    (tmp_path / "freqs.dat").write_text("\n".join(f"{f:.1f}" for f in freqs) + "\n")
    phi_max, dphi = 60.0, 0.5
    subprocess.run([rmsynth3d, "Q.fits", "U.fits", "freqs.dat", "-l", str(phi_max), "-d", str(dphi), "-w", "uniform",
                    "-o", "rmt_"], cwd=tmp_path, check=True, capture_output=True)
    q_blank = q.copy()
    q_blank[3, 0:4, 0:4] = np.nan  # a blank in one channel of a corner: that channel left out there
    write_fits(tmp_path / "Q_blank.fits", q_blank, freqs)
    out = tmp_path / "ours"
    command = [sys.executable, "-m", "spectropol.cli", "faraday", str(out), "--q", str(tmp_path / "Q_blank.fits"),
               "--u", str(tmp_path / "U.fits"), "--freqs", str(tmp_path / "freqs.dat"), "--weighting", "uniform",
               "--phi-max-rad-m2", str(phi_max), "--dphi-rad-m2", str(dphi), "--min-snr", "6", "--save-fdf",
               "--fractional"]
    subprocess.run(command, check=True, capture_output=True)
    from spectropol.stages.faraday import open_fdf

    ours = open_fdf(out / "fdf_dirty.zarr")["fdf"].values
    theirs = fits.getdata(tmp_path / "rmt_FDF_real_dirty.fits") + 1j * fits.getdata(tmp_path / "rmt_FDF_im_dirty.fits")
    outside = np.ones((SIZE, SIZE), bool)
    outside[0:4, 0:4] = False
    peak = np.abs(theirs).max()
    assert np.abs(ours - theirs)[:, outside].max() < 1e-4 * peak
    peaks = open_fdf(out / "peaks.zarr")
    catalogue = Table.read(out / "catalogue.vot")
    for x, y, p, rm, _ in truth:
        assert abs(peaks["peak_phi"].values[y, x] - rm) < 3 * peaks["peak_phi_err"].values[y, x]
        k = int(np.argmin(np.hypot(catalogue["x_pix"] - x, catalogue["y_pix"] - y)))
        assert abs(catalogue["rm"][k] - rm) < 3 * catalogue["rm_err"][k]
    assert np.isnan(ours[:, 0:4, 0:4]).sum() == 0  # the other channels carry the corner
    # no Stokes I, so no model to divide by: q, u synthesis falls back to Q, U and says so
    assert len(catalogue) >= len(truth) and set(catalogue["rm_method"]) == {"RM Synthesis - Pol. Int"}


@pytest.mark.slow
@pytest.mark.wsclean
@pytest.mark.skipif(not has_wsclean(), reason="wsclean not installed (make system-deps installs it)")
def test_wsclean_images_of_the_tiny_ms_give_the_simulated_faraday_depths(tiny_run, tiny_config, demo_sky, tmp_path):
    # WSClean images and cleans the tiny run's MS as the workflow does (IQUV joined, Briggs 0, 500
    # iterations); `spectropol faraday` measures its I, Q, U and V images. Imaging is then not ours:
    # each polarised source must be catalogued with its RM within 3 sigma of the truth, Stokes I
    # within 1%, alpha within 0.05, PI within 2% and V/I within its error of the truth, as our own
    # workflow's catalogue must
    # (test_catalogue.py), the two catalogues' RMs agree, and false detections stay under one per
    # 100 beams. (Dirty images would not do: their sidelobes make islands of their own.)
    from astropy.table import Table

    npix, cell = tiny_config["imaging"]["size"], tiny_config["imaging"]["cell_arcsec"]
    nchan = tiny_config["simulate"]["nchan"]
    prefix = tmp_path / "wsc"
    subprocess.run(["wsclean", "-quiet", "-size", str(npix), str(npix), "-scale", f"{cell}asec", "-pol", "IQUV",
                    "-channels-out", str(nchan), "-niter", str(tiny_config["clean"]["niter"]), "-mgain", "0.8",
                    "-join-polarizations", "-auto-threshold", "3", "-no-update-model-required", "-weight", "briggs",
                    str(tiny_config["imaging"]["robust"]), "-name", str(prefix), str(tiny_run / "work/ms/demo.ms")],
                   check=True, capture_output=True)
    images = {s: sorted(tmp_path.glob(f"wsc-[0-9][0-9][0-9][0-9]-{s}-image.fits")) for s in "IQUV"}
    assert all(len(files) == nchan for files in images.values())
    out = tmp_path / "faraday"
    command = [sys.executable, "-m", "spectropol.cli", "faraday", str(out)]
    for stokes, files in images.items():
        command += [f"--{stokes.lower()}", *map(str, files)]
    subprocess.run(command, check=True, capture_output=True)
    theirs = Table.read(out / "catalogue.vot")
    ours = Table.read(tiny_run / "results/catalogue/catalogue.vot")
    freqs = open_cube(out / "cube.zarr")["freq"].values
    reference_hz, sources = demo_sky
    polarised = [source for source in sources if source.pol_fraction > 0]
    beam_px = float(np.nanmedian(open_cube(out / "cube.zarr")["bmaj"].values)) * 3600 / cell
    assert len(theirs) - len(polarised) <= npix**2 / (1.1331 * beam_px**2) / 100
    for source in polarised:
        x, y = source_pixel(source, npix, cell)
        k = int(np.argmin(np.hypot(theirs["x_pix"] - x, theirs["y_pix"] - y)))
        row = theirs[k]
        assert np.hypot(row["x_pix"] - x, row["y_pix"] - y) < 1.0, source.name
        assert abs(row["rm"] - source.rm_rad_m2) < 3 * row["rm_err"], source.name
        truth_pi = np.hypot(*[source.stokes(freqs, reference_hz)[s] for s in "QU"]).mean()
        assert row["polint"] == pytest.approx(truth_pi, rel=0.05), source.name
        # measurement judged apart from imaging: Stokes I and its spectral index from WSClean's
        # restored images at the fitted position, against the simulated truth at reffreq_I
        truth_i = source.stokes_i_jy * (row["reffreq_I"] / reference_hz) ** source.spectral_index
        assert row["stokesI"] == pytest.approx(truth_i, rel=0.01, abs=3 * row["stokesI_err"]), source.name
        assert row["spectral_index"] == pytest.approx(source.spectral_index, abs=0.05), source.name
        assert row["polint"] == pytest.approx(source.pol_fraction * truth_i, rel=0.02), source.name
        assert abs(row["v_over_i"] - source.v_fraction) < 0.002 + 3 * row["stokesV_err"] / row["stokesI"], source.name
        j = int(np.argmin(np.hypot(ours["x_pix"] - x, ours["y_pix"] - y)))
        assert abs(row["rm"] - ours["rm"][j]) < 3 * np.hypot(row["rm_err"], ours["rm_err"][j]), source.name


def test_the_workflow_starts_from_fits_cubes(tmp_path):
    # input.cubes instead of an MS: the DAG is the cube made from the FITS files, then the Faraday
    # stages, catalogue, report and QA; no MS stage runs. Every source is catalogued at its truth
    # (RM within 3 sigma); a second run has nothing to do; a re-delivered U cube (new content) remakes the cube
    # and everything after it, and nothing else.
    import yaml
    from astropy.table import Table

    from conftest import job_counts, run_snakemake

    freqs, q, u, truth = polarised_field()
    beam = (0.015, 0.015, 0.0)  # 3 pixels of 0.005 deg
    write_fits(tmp_path / "Q.fits", q, freqs, beam=beam)
    write_fits(tmp_path / "U.fits", u, freqs, beam=beam)
    config = {"input": {"cubes": {"q": "Q.fits", "u": "U.fits"}}, "faraday": {"dphi": 0.5, "phi_max": 60.0},
              "catalogue": {"min_snr": 6.0}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    every_job = {"cube_from_fits": 1, "export_moment_fits": 1, "faraday_depth": 1,
                 "export_faraday_fits": 1, "catalogue": 1, "report_field": 1, "report_sources": 1,
                 "report_catalogue": 1, "report_provenance": 1, "qa_summary": 1, "all": 1}
    assert job_counts(run_snakemake(tmp_path, "--configfile", "config.yaml")) == every_job
    catalogue = Table.read(tmp_path / "results/catalogue/catalogue.vot")
    assert len(catalogue) == len(truth)
    for x, y, p, rm, _ in truth:
        k = int(np.argmin(np.hypot(catalogue["x_pix"] - x, catalogue["y_pix"] - y)))
        assert np.hypot(catalogue["x_pix"][k] - x, catalogue["y_pix"][k] - y) < 1.0
        assert abs(catalogue["rm"][k] - rm) < 3 * catalogue["rm_err"][k]
    assert job_counts(run_snakemake(tmp_path, "--configfile", "config.yaml", "-n")) == {}
    (tmp_path / "U.fits").unlink()
    write_fits(tmp_path / "U.fits", 1.01 * u, freqs, beam=beam)  # recalibrated
    # everything again but the provenance page, which follows the configuration and the software
    assert job_counts(run_snakemake(tmp_path, "--configfile", "config.yaml", "-n")) == {
        rule: n for rule, n in every_job.items() if rule != "report_provenance"}


def test_input_cubes_and_ms_together_are_refused_before_any_job(tmp_path):
    import yaml

    from conftest import run_snakemake

    freqs, q, u, _ = polarised_field()
    write_fits(tmp_path / "Q.fits", q, freqs)
    config = {"input": {"ms": "obs.ms", "cubes": {"q": "Q.fits", "u": "U.fits"}}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = run_snakemake(tmp_path, "--configfile", "config.yaml", "-n", check=False)
    assert result.returncode != 0
    assert "give input.ms (to image) or input.cubes (images made elsewhere), not both" in result.stderr
    config["input"].pop("ms")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = run_snakemake(tmp_path, "--configfile", "config.yaml", "-n", check=False)
    assert result.returncode != 0 and "U.fits: no such FITS file (input.cubes.u)" in result.stderr


def test_fits_regions_are_read_a_run_of_planes_at_a_time(tmp_path):
    # A cube's region is one slice of its memory map (a run of its planes); channel images, one
    # plane a file, are runs of one; either way the region is the files' own pixels, in frequency order.
    from spectropol.io.polarisation import stokes_from_fits

    rng = np.random.default_rng(4)
    freqs = np.linspace(1.0e9, 1.2e9, 6)
    q, u = (rng.standard_normal((6, 30, 40)).astype(np.float32) for _ in range(2))
    write_fits(tmp_path / "Q.fits", q, freqs, stokes="Q")
    for c in range(6):
        write_fits(tmp_path / f"U-{c:04d}.fits", u[c:c + 1], freqs[c:c + 1], stokes="U")
    source = stokes_from_fits([tmp_path / "Q.fits"], sorted(tmp_path.glob("U-*.fits"))[::-1])
    read = source.regions(("Q", "U"))
    assert [count for _, _, count in read.runs("Q")] == [6] and [count for _, _, count in read.runs("U")] == [1] * 6
    region_q, region_u = read(slice(5, 29), slice(11, 40))
    assert not region_q.flags.owndata and region_u.flags.owndata  # the cube's region is its memory map
    np.testing.assert_array_equal(region_q, q[:, 5:29, 11:40])
    np.testing.assert_array_equal(region_u, u[:, 5:29, 11:40])
