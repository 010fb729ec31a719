"""Reading Measurement Sets: what is in one (select_data) and one channel of it (read_channel).

Only the selected spectral window and field are read, cross-correlations only, and a channel is
read as a column slice so that its cost does not grow with the number of channels.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np

from ..errors import fail
from ..kernels.stokes import CORR_CODES, feed_basis, stokes_matrix

log = logging.getLogger(__name__)

REQUIRED_SUBTABLES = ("ANTENNA", "DATA_DESCRIPTION", "FIELD", "POLARIZATION", "SPECTRAL_WINDOW")


def open_table(path: str, name: str | None = None):
    """Open the MS (or one of its subtables) read-only with a one-line error if it cannot be read."""
    from casacore.tables import table

    target = f"{path}::{name}" if name else str(path)
    try:
        return table(target, readonly=True, ack=False)
    except RuntimeError as err:
        what = f"subtable {name} " if name else ""
        raise fail(path, f"cannot open {what}as a casacore table ({str(err).splitlines()[0]})") from None


def _select_one(path: str, what: str, available: list[int], chosen: int | None) -> int:
    if chosen is None:
        if len(available) != 1:
            raise fail(path, f"has {len(available)} {what}s {available}; choose one with input.{what} in the config")
        return available[0]
    if chosen not in available:
        raise fail(path, f"{what} {chosen} is not in the data (available: {available})")
    return chosen


def channel_frequencies(ms_path: str, spw: int | None = None) -> np.ndarray:
    """Channel frequencies (Hz) of the spectral window ``spw`` (the only one when None). Cheap:
    reads only the SPECTRAL_WINDOW subtable, so the workflow can call it while building the DAG."""
    if not os.path.isdir(ms_path):
        raise fail(ms_path, "Measurement Set not found")
    with open_table(ms_path, "SPECTRAL_WINDOW") as spw_table:
        nspw = spw_table.nrows()
        if nspw == 0:
            raise fail(ms_path, "SPECTRAL_WINDOW subtable is empty")
        spw = _select_one(ms_path, "spw", list(range(nspw)), spw)
        return np.asarray(spw_table.getcell("CHAN_FREQ", spw), dtype=np.float64)


def correlation_names(ms_path: str, polarization_id: int) -> tuple[str, ...]:
    """Correlation names (XX, XY, ... or RR, RL, ...) of a POLARIZATION row, with a one-line error
    when they are not one feed basis we know."""
    with open_table(ms_path, "POLARIZATION") as t:
        codes = t.getcell("CORR_TYPE", int(polarization_id))
    try:
        names = tuple(CORR_CODES[int(c)] for c in codes)
        feed_basis(names)
    except (KeyError, ValueError):
        raise fail(ms_path,
                   f"CORR_TYPE {list(map(int, codes))} is not linear (XX..YY) or circular (RR..LL) feeds") from None
    return names


def stokes_available(ms_path: str, spw: int | None = None) -> tuple[str, ...]:
    """The Stokes parameters the correlations of ``spw`` can form (I, Q with XX, YY only). Cheap:
    reads only the small POLARIZATION and DATA_DESCRIPTION subtables."""
    if not os.path.isdir(ms_path):
        raise fail(ms_path, "Measurement Set not found")
    with open_table(ms_path, "SPECTRAL_WINDOW") as t:
        spw = _select_one(ms_path, "spw", list(range(t.nrows())), spw)
    with open_table(ms_path, "DATA_DESCRIPTION") as t:
        rows = [r for r in range(t.nrows()) if t.getcell("SPECTRAL_WINDOW_ID", r) == spw]
        if not rows:
            raise fail(ms_path, f"no DATA_DESCRIPTION row refers to spectral window {spw}")
        pol_id = int(t.getcell("POLARIZATION_ID", rows[0]))
    return stokes_matrix(correlation_names(ms_path, pol_id))[1]


@dataclass(frozen=True)
class SpectralWindowInfo:
    """A spectral window as the SPECTRAL_WINDOW, DATA_DESCRIPTION and POLARIZATION subtables
    describe it: channel frequencies and widths (Hz, |CHAN_WIDTH|) in the table's order (which
    may be decreasing), and the correlations of its first data description."""

    spw: int
    freqs_hz: tuple[float, ...]
    widths_hz: tuple[float, ...]
    corr_names: tuple[str, ...]

    @property
    def stokes(self) -> tuple[str, ...]:
        return stokes_matrix(self.corr_names)[1]


@dataclass(frozen=True)
class MSInfo:
    """What planning reads of an MS: its spectral windows, fields (name, RA, Dec in rad) and the
    bytes its files hold. Only subtables and file sizes: no column of the main table."""

    ms: str
    spws: tuple[SpectralWindowInfo, ...]
    fields: tuple[tuple[str, float, float], ...]
    size_bytes: int
    telescope: str = ""  # OBSERVATION::TELESCOPE_NAME of its first row; empty where there is none


def describe_ms(ms_path: str) -> MSInfo:
    """The MSInfo of ``ms_path``, with a one-line error for a missing MS or damaged subtables."""
    if not os.path.isdir(ms_path):
        raise fail(ms_path, "Measurement Set not found")
    try:
        with open_table(ms_path, "DATA_DESCRIPTION") as t:
            dd_spw = [int(v) for v in t.getcol("SPECTRAL_WINDOW_ID")] if t.nrows() else []
            dd_pol = [int(v) for v in t.getcol("POLARIZATION_ID")] if t.nrows() else []
        spws = []
        with open_table(ms_path, "SPECTRAL_WINDOW") as t:
            if t.nrows() == 0:
                raise fail(ms_path, "SPECTRAL_WINDOW subtable is empty")
            for spw in range(t.nrows()):
                if spw not in dd_spw:
                    continue  # no data description refers to it: it holds no data
                freqs = np.asarray(t.getcell("CHAN_FREQ", spw), dtype=np.float64)
                widths = np.abs(np.asarray(t.getcell("CHAN_WIDTH", spw), dtype=np.float64))
                corr = correlation_names(ms_path, dd_pol[dd_spw.index(spw)])
                spws.append(SpectralWindowInfo(spw, tuple(freqs.tolist()), tuple(widths.tolist()), corr))
        with open_table(ms_path, "FIELD") as t:
            fields = []
            for row in range(t.nrows()):
                ra, dec = np.asarray(t.getcell("PHASE_DIR", row)).reshape(-1, 2)[0]
                fields.append((str(t.getcell("NAME", row)), float(ra), float(dec)))
        telescope = ""
        if os.path.isdir(os.path.join(ms_path, "OBSERVATION")):
            with open_table(ms_path, "OBSERVATION") as t:
                telescope = str(t.getcell("TELESCOPE_NAME", 0)) if t.nrows() else ""
    except RuntimeError as err:
        raise fail(ms_path, f"cannot be read; it is truncated or damaged ({str(err).splitlines()[0]})") from None
    size = sum(os.path.getsize(os.path.join(root, name)) for root, _, files in os.walk(ms_path) for name in files)
    return MSInfo(ms=str(ms_path), spws=tuple(spws), fields=tuple(fields), size_bytes=size, telescope=telescope)


def selection_where(ddid: int, field: int, time_window_mjd_s: tuple[float, float] | None = None) -> str:
    """The TaQL condition of the rows the workflow reads: one data description and field, and
    cross-correlations only, in a time window if one is given. Values are numbers we produced,
    never text from a file or the config."""
    where = f"DATA_DESC_ID=={int(ddid)} AND FIELD_ID=={int(field)} AND ANTENNA1!=ANTENNA2"
    if time_window_mjd_s is not None:
        start, end = (float(t) for t in time_window_mjd_s)
        where += f" AND TIME>={start!r} AND TIME<={end!r}"
    return where


@dataclass(frozen=True)
class Selection:
    """What the workflow reads from an MS: one data description (SPW + polarisation) and one field,
    in a time window (MJD seconds, as the TIME column) when one is given."""

    ms: str
    column: str
    spw: int
    field: int
    ddid: int
    corr_names: tuple[str, ...]
    freqs: np.ndarray
    phase_centre_rad: tuple[float, float]
    field_name: str
    telescope: str
    time_range_mjd_s: tuple[float, float]
    nrows: int
    max_uvw_m: float
    time_window_mjd_s: tuple[float, float] | None = None
    dish_diameter_m: float = float("nan")  # the antennas' median ANTENNA::DISH_DIAMETER; NaN where unknown

    def to_dict(self) -> dict:
        return {
            "ms": self.ms, "column": self.column, "spw": self.spw, "field": self.field, "ddid": self.ddid,
            "corr_names": list(self.corr_names), "feed_basis": feed_basis(self.corr_names),
            "freqs_hz": self.freqs.tolist(), "phase_centre_rad": list(self.phase_centre_rad),
            "field_name": self.field_name, "telescope": self.telescope,
            "time_range_mjd_s": list(self.time_range_mjd_s), "nrows": self.nrows, "max_uvw_m": self.max_uvw_m,
            "time_window_mjd_s": list(self.time_window_mjd_s) if self.time_window_mjd_s else None,
            "dish_diameter_m": self.dish_diameter_m if np.isfinite(self.dish_diameter_m) else None,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Selection:
        window = d.get("time_window_mjd_s")
        return cls(
            ms=d["ms"], column=d["column"], spw=d["spw"], field=d["field"], ddid=d["ddid"],
            corr_names=tuple(d["corr_names"]), freqs=np.asarray(d["freqs_hz"]),
            phase_centre_rad=tuple(d["phase_centre_rad"]), field_name=d["field_name"], telescope=d["telescope"],
            time_range_mjd_s=tuple(d["time_range_mjd_s"]), nrows=d["nrows"], max_uvw_m=d["max_uvw_m"],
            time_window_mjd_s=tuple(window) if window else None,
            dish_diameter_m=float("nan") if d.get("dish_diameter_m") is None else float(d["dish_diameter_m"]),
        )

    @property
    def taql(self) -> str:
        return selection_where(self.ddid, self.field, self.time_window_mjd_s)


def mjd_seconds(iso_utc: str) -> float:
    """An ISO-8601 UTC time as MJD seconds, the unit of an MS's TIME column."""
    from astropy.time import Time

    try:
        return float(Time(iso_utc, format="isot", scale="utc").mjd * 86400.0)
    except ValueError as err:
        raise fail(None, f"input.time_range: {iso_utc!r} is not an ISO-8601 UTC time ({err})") from None


def select_data(ms_path: str, column: str = "DATA", spw: int | None = None, field: int | None = None,
                time_range_utc: tuple[str, str] | None = None) -> Selection:
    """Check that ``ms_path`` has what imaging needs and describe the selected data.

    Raises SpectropolError (one line naming the MS) for a missing MS, subtable or column, an
    ambiguous SPW or field, correlations that are not a feed basis we know, or no cross-correlations.
    """
    if not os.path.isdir(ms_path):
        raise fail(ms_path, "Measurement Set not found")
    window = tuple(mjd_seconds(t) for t in time_range_utc) if time_range_utc else None
    main = open_table(ms_path)
    try:
        present = {os.path.basename(s) for s in main.getsubtables()}
        for name in REQUIRED_SUBTABLES:
            if name not in present:
                raise fail(ms_path, f"required subtable {name} is missing")
        columns = set(main.colnames())
        for name in (column, "FLAG", "UVW", "ANTENNA1", "ANTENNA2", "DATA_DESC_ID", "FIELD_ID"):
            if name not in columns:
                hint = " (set input.column in the config)" if name == column else ""
                raise fail(ms_path, f"has no {name} column{hint}")
        if main.nrows() == 0:
            raise fail(ms_path, "main table has no rows")

        freqs = channel_frequencies(ms_path, spw)
        with open_table(ms_path, "SPECTRAL_WINDOW") as t:
            spw = _select_one(ms_path, "spw", list(range(t.nrows())), spw)
        with open_table(ms_path, "DATA_DESCRIPTION") as t:
            spw_of_dd = t.getcol("SPECTRAL_WINDOW_ID")
            pol_of_dd = t.getcol("POLARIZATION_ID")
        used_dd = np.unique(main.getcol("DATA_DESC_ID"))
        matching = [int(d) for d in used_dd if spw_of_dd[d] == spw]
        if not matching:
            raise fail(ms_path, f"has no rows in spectral window {spw}")
        ddid = matching[0]
        corr_names = correlation_names(ms_path, int(pol_of_dd[ddid]))

        used_fields = [int(f) for f in np.unique(main.getcol("FIELD_ID"))]
        field = _select_one(ms_path, "field", used_fields, field)
        with open_table(ms_path, "FIELD") as t:
            phase_dir = np.asarray(t.getcell("PHASE_DIR", field)).reshape(-1, 2)[0]
            field_name = str(t.getcell("NAME", field))

        telescope = ""
        if "OBSERVATION" in present:
            with open_table(ms_path, "OBSERVATION") as t:
                if t.nrows():
                    telescope = str(t.getcell("TELESCOPE_NAME", 0))

        dish_diameter_m = float("nan")
        if "ANTENNA" in present:
            with open_table(ms_path, "ANTENNA") as t:
                if t.nrows() and "DISH_DIAMETER" in t.colnames():
                    diameters = np.asarray(t.getcol("DISH_DIAMETER"), dtype=np.float64)
                    diameters = diameters[np.isfinite(diameters) & (diameters > 0)]
                    dish_diameter_m = float(np.median(diameters)) if diameters.size else float("nan")

        from casacore.tables import taql

        selected = taql(f"SELECT UVW, TIME FROM $main WHERE {selection_where(ddid, field, window)}")
        nrows = selected.nrows()
        if nrows == 0:
            within = f" between {time_range_utc[0]} and {time_range_utc[1]}" if window else ""
            raise fail(ms_path, f"has no cross-correlations in spw {spw}, field {field}{within}")
        uvw = selected.getcol("UVW")
        time = selected.getcol("TIME")
        selected.close()
        if not np.all(np.isfinite(uvw)):
            raise fail(ms_path, "UVW column has non-finite values")
    except RuntimeError as err:  # casacore's errors for damaged tables
        raise fail(ms_path, f"cannot be read; it is truncated or damaged ({str(err).splitlines()[0]})") from None
    finally:
        main.close()
    return Selection(
        ms=str(ms_path), column=column, spw=spw, field=field, ddid=ddid, corr_names=corr_names, freqs=freqs,
        phase_centre_rad=(float(phase_dir[0]), float(phase_dir[1])), field_name=field_name, telescope=telescope,
        time_range_mjd_s=(float(time.min()), float(time.max())), nrows=int(nrows),
        max_uvw_m=float(np.sqrt((uvw[:, :2] ** 2).sum(axis=1)).max()), time_window_mjd_s=window,
        dish_diameter_m=dish_diameter_m,
    )


@dataclass
class ChannelData:
    """Cross-correlation data of one channel: vis/flags/weights (nrow, ncorr), uvw (nrow, 3) in m."""

    vis: np.ndarray
    flags: np.ndarray
    weights: np.ndarray
    uvw: np.ndarray
    time: np.ndarray
    freq: float
    antenna1: np.ndarray
    antenna2: np.ndarray


@dataclass
class RowData:
    """The columns of the selected rows that every channel shares (read once for a block)."""

    uvw: np.ndarray
    time: np.ndarray
    antenna1: np.ndarray
    antenna2: np.ndarray
    flag_row: np.ndarray | None
    weight: np.ndarray | None  # WEIGHT, when there is no WEIGHT_SPECTRUM


def _read_rows(sub) -> RowData:
    has_spectrum = "WEIGHT_SPECTRUM" in sub.colnames() and sub.iscelldefined("WEIGHT_SPECTRUM", 0)
    return RowData(uvw=sub.getcol("UVW"), time=sub.getcol("TIME"), antenna1=sub.getcol("ANTENNA1"),
                   antenna2=sub.getcol("ANTENNA2"),
                   flag_row=sub.getcol("FLAG_ROW") if "FLAG_ROW" in sub.colnames() else None,
                   weight=None if has_spectrum else sub.getcol("WEIGHT"))


def read_rows(selection: Selection) -> RowData:
    """The row columns of the selected data, to read several channels with (read_channel)."""
    from casacore.tables import taql

    main = open_table(selection.ms)
    try:
        sub = taql(f"SELECT FROM $main WHERE {selection.taql}")
        try:
            return _read_rows(sub)
        except RuntimeError as err:
            raise fail(selection.ms, f"cannot be read; the table is truncated or damaged "
                                     f"({str(err).splitlines()[0]})") from None
        finally:
            sub.close()
    finally:
        main.close()


def read_channel(selection: Selection, channel: int, rows: RowData | None = None) -> ChannelData:
    """Read one channel of the selected data as a column slice (WEIGHT_SPECTRUM when present);
    ``rows`` (read_rows) saves reading the row columns again for each channel of a block."""
    from casacore.tables import taql

    if not 0 <= channel < len(selection.freqs):
        raise fail(selection.ms, f"channel {channel} is outside spw {selection.spw} (0..{len(selection.freqs) - 1})")
    main = open_table(selection.ms)
    try:
        sub = taql(f"SELECT FROM $main WHERE {selection.taql}")
        ncorr = len(selection.corr_names)
        blc, trc = [channel, 0], [channel, ncorr - 1]
        try:
            rows = _read_rows(sub) if rows is None else rows
            vis = sub.getcolslice(selection.column, blc, trc)[:, 0, :]
            flags = sub.getcolslice("FLAG", blc, trc)[:, 0, :]
            weights = sub.getcolslice("WEIGHT_SPECTRUM", blc, trc)[:, 0, :] if rows.weight is None else rows.weight
            if rows.flag_row is not None:
                flags = flags | rows.flag_row[:, None]
        except RuntimeError as err:
            raise fail(selection.ms, f"cannot read channel {channel}; the table is truncated or damaged "
                                     f"({str(err).splitlines()[0]})") from None
        sub.close()
    finally:
        main.close()
    return ChannelData(vis=vis, flags=flags.astype(bool), weights=weights.astype(np.float64), uvw=rows.uvw,
                       time=rows.time, freq=float(selection.freqs[channel]), antenna1=rows.antenna1,
                       antenna2=rows.antenna2)


# ANTENNA::MOUNT values whose feeds turn with the parallactic angle, and those whose feeds do not.
ALT_AZ_MOUNTS = {"alt-az", "altaz", "alt_az", "alt-az+rotator"}
FIXED_MOUNTS = {"equatorial"}


@dataclass(frozen=True)
class FeedGeometry:
    """What the parallactic angle of each antenna's feeds needs: geodetic longitude and latitude
    (rad), whether the mount turns the feeds on the sky, and the first receptor's angle (rad)."""

    longitude_rad: np.ndarray
    latitude_rad: np.ndarray
    rotates: np.ndarray
    receptor_angle_rad: np.ndarray


def read_feed_geometry(ms_path: str) -> FeedGeometry:
    """The FeedGeometry of an MS (ANTENNA and FEED subtables), refused in one line when a mount is
    one whose feed rotation we do not model (X-Y, or unknown)."""
    from astropy import units as u
    from astropy.coordinates import EarthLocation

    with open_table(ms_path, "ANTENNA") as t:
        positions = np.asarray(t.getcol("POSITION"), dtype=np.float64)
        mounts = [str(m).strip().lower() for m in t.getcol("MOUNT")]
    unknown = sorted({m for m in mounts if m not in ALT_AZ_MOUNTS | FIXED_MOUNTS})
    if unknown:
        raise fail(ms_path, f"ANTENNA::MOUNT is {unknown[0]!r}: the parallactic angle is known only for alt-az "
                            "(and equatorial) mounts; set input.derotate_parallactic_angle false")
    location = EarthLocation.from_geocentric(positions[:, 0], positions[:, 1], positions[:, 2], unit=u.m)
    receptor = np.zeros(len(positions))
    with open_table(ms_path, "FEED") as t:
        if t.nrows():
            antennas = np.asarray(t.getcol("ANTENNA_ID"))
            angles = np.asarray(t.getcol("RECEPTOR_ANGLE")).reshape(len(antennas), -1)[:, 0]
            receptor[antennas] = angles
    return FeedGeometry(longitude_rad=location.lon.to_value(u.rad), latitude_rad=location.lat.to_value(u.rad),
                        rotates=np.array([m in ALT_AZ_MOUNTS for m in mounts]), receptor_angle_rad=receptor)
