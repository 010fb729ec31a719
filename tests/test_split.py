"""Reading the MS and forming Stokes visibilities per channel, in both feed bases."""

import numpy as np
import pytest
from ms_tools import add_spectral_window

from spectropol.constants import STOKES
from spectropol.errors import SpectropolError
from spectropol.io.channels import read_channel_vis
from spectropol.io.ms import channel_frequencies, read_channel, select_data
from spectropol.measurement import predict_visibilities
from spectropol.stages.split import split_channel


def true_stokes_visibilities(selection, channel, uvw, sky):
    reference_hz, sources = sky
    freq = selection.freqs[channel : channel + 1]
    flux = np.stack([[[s.stokes(freq, reference_hz)[k][0] for k in STOKES]] for s in sources])  # (nsrc, 1, 4)
    return predict_visibilities(uvw, freq, [s.l for s in sources], [s.m for s in sources], flux)[:, 0]


@pytest.mark.parametrize("feeds", ["linear", "circular"])
def test_split_recovers_the_simulated_stokes_visibilities(small_ms, tmp_path, demo_sky, feeds):
    ms = small_ms(feeds=feeds, noise_jy=1e-4)
    selection = select_data(str(ms))
    assert selection.corr_names == (("XX", "XY", "YX", "YY") if feeds == "linear" else ("RR", "RL", "LR", "LL"))
    stats = split_channel(selection, 4, tmp_path / "v.zarr", tmp_path / "v.json")
    arrays, attrs = read_channel_vis(tmp_path / "v.zarr")
    assert attrs["channel"] == 4 and attrs["freq_hz"] == pytest.approx(128e6)
    truth = true_stokes_visibilities(selection, 4, arrays["uvw"], demo_sky)
    # noise 1e-4 Jy per correlation part: Stokes agree to well under a mJy
    np.testing.assert_allclose(arrays["vis"], truth, atol=2e-3)
    assert stats.rows_kept == selection.nrows
    assert stats.flagged_fraction == 0.0
    # inverse variance of (XX + YY) / 2 with sigma = 1e-4 on each part: 2 / sigma^2
    np.testing.assert_allclose(arrays["weight"], 2 / 1e-4**2, rtol=1e-5)
    # the store is labelled for xarray too
    import xarray as xr

    assert list(xr.open_zarr(tmp_path / "v.zarr")["vis"].dims) == ["row", "stokes"]


def test_read_channel_is_the_channel_slice_of_the_full_column(small_ms):
    from casacore.tables import table

    ms = small_ms()
    selection = select_data(str(ms))
    data = read_channel(selection, 2)
    with table(str(ms), ack=False) as t:
        full = t.getcol("DATA")
    np.testing.assert_array_equal(data.vis, full[:, 2, :])
    np.testing.assert_allclose(channel_frequencies(str(ms)), selection.freqs)


def test_flagged_rows_and_channels(small_ms, tmp_path):
    from casacore.tables import table

    ms = small_ms()
    with table(str(ms), readonly=False, ack=False) as t:
        flags = t.getcol("FLAG")
        flags[:, 1, :] = True          # channel 1 entirely flagged
        flags[: t.nrows() // 4, 3, 0] = True  # a quarter of XX in channel 3
        t.putcol("FLAG", flags)
    selection = select_data(str(ms))
    empty = split_channel(selection, 1, tmp_path / "c1.zarr", tmp_path / "c1.json")
    assert empty.rows_kept == 0 and empty.flagged_fraction == 1.0
    partial = split_channel(selection, 3, tmp_path / "c3.zarr", tmp_path / "c3.json")
    # XX flags remove I and Q for those rows (2 of 4 Stokes on a quarter of the rows)
    assert partial.flagged_fraction == pytest.approx(0.25 * 2 / 4, abs=1e-3)
    assert partial.visibilities_usable["U"] == selection.nrows


def test_missing_ms_and_column_are_one_line_errors(small_ms, tmp_path):
    with pytest.raises(SpectropolError, match=r"nowhere\.ms: Measurement Set not found"):
        select_data(str(tmp_path / "nowhere.ms"))
    ms = small_ms()
    with pytest.raises(SpectropolError, match=r"has no CORRECTED_DATA column \(set input.column"):
        select_data(str(ms), column="CORRECTED_DATA")


def test_several_spectral_windows_need_a_choice(small_ms):
    ms = small_ms()
    add_spectral_window(ms, 50e6)  # used by the second half of the rows
    with pytest.raises(SpectropolError, match=r"has 2 spws \[0, 1\]; choose one with input.spw"):
        select_data(str(ms))
    second = select_data(str(ms), spw=1)
    assert second.freqs[0] == pytest.approx(170e6)
    assert second.nrows == select_data(str(ms), spw=0).nrows


def test_ionospheric_rotation_is_removed_per_visibility(small_ms, tmp_path, demo_sky):
    # A table of RM_ion(t) rising through the track: after correction each Stokes visibility is
    # the sky's, rotated back by RM_ion(t) lambda^2 (so a constant table shifts every RM by -RM_ion).
    from spectropol.kernels.stokes import rotate_linear_polarisation

    ms = small_ms(noise_jy=1e-4)
    selection = select_data(str(ms))
    t0, t1 = selection.time_range_mjd_s
    table = tmp_path / "ionosphere.csv"
    table.write_text(f"time_mjd_s,rm_rad_m2\n{t0 - 10},0.5\n{t1 + 10},2.5\n")
    stats = split_channel(selection, 2, tmp_path / "v.zarr", tmp_path / "v.json", ionosphere_rm=table)
    assert 0.5 < stats.ionosphere["rm_mean"] < 2.5
    arrays, _ = read_channel_vis(tmp_path / "v.zarr")
    truth = true_stokes_visibilities(selection, 2, arrays["uvw"], demo_sky)
    data = read_channel(selection, 2)
    rm = np.interp(data.time, [t0 - 10, t1 + 10], [0.5, 2.5])
    q, u = rotate_linear_polarisation(truth[:, 1], truth[:, 2], rm * (299792458.0 / selection.freqs[2]) ** 2)
    np.testing.assert_allclose(arrays["vis"][:, 1], q, atol=2e-3)
    np.testing.assert_allclose(arrays["vis"][:, 2], u, atol=2e-3)
    np.testing.assert_allclose(arrays["vis"][:, 0], truth[:, 0], atol=2e-3)  # I untouched


def test_ionosphere_table_must_cover_the_observation(small_ms, tmp_path):
    ms = small_ms()
    selection = select_data(str(ms))
    table = tmp_path / "short.csv"
    table.write_text("time_mjd_s,rm_rad_m2\n0,1.0\n10,1.0\n")
    with pytest.raises(SpectropolError, match="short.csv: covers MJD seconds 0.0..10.0 but"):
        split_channel(selection, 0, tmp_path / "v.zarr", tmp_path / "v.json", ionosphere_rm=table)
    assert not (tmp_path / "v.zarr").exists()
    bad = tmp_path / "bad.csv"
    bad.write_text("time,rm\nyesterday,1\n")
    with pytest.raises(SpectropolError, match="bad.csv: ionospheric RM table is not two numeric CSV columns"):
        split_channel(selection, 0, tmp_path / "v.zarr", tmp_path / "v.json", ionosphere_rm=bad)
