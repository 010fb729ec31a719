"""Measurement Sets made from others for tests: subbands cut from one MS (in either frequency
order), as a correlator or a pipeline that writes one MS per subband would deliver them."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def read_ms(ms: Path) -> dict:
    """What io.ms_writer.write_ms needs to write the same observation again."""
    from casacore.tables import table

    with table(str(ms), ack=False) as t:
        columns = {name: t.getcol(name) for name in ("DATA", "FLAG", "UVW", "TIME", "ANTENNA1", "ANTENNA2",
                                                    "WEIGHT", "INTERVAL")}
    with table(f"{ms}::SPECTRAL_WINDOW", ack=False) as t:
        freqs, widths = t.getcell("CHAN_FREQ", 0), t.getcell("CHAN_WIDTH", 0)
    with table(f"{ms}::POLARIZATION", ack=False) as t:
        from spectropol.kernels.stokes import CORR_CODES

        corr = tuple(CORR_CODES[int(c)] for c in t.getcell("CORR_TYPE", 0))
    with table(f"{ms}::FIELD", ack=False) as t:
        ra, dec = t.getcell("PHASE_DIR", 0)[0]
    with table(f"{ms}::ANTENNA", ack=False) as t:
        names, positions = list(t.getcol("NAME")), t.getcol("POSITION")
        dish, mount = float(t.getcol("DISH_DIAMETER")[0]), str(t.getcol("MOUNT")[0])
    with table(f"{ms}::OBSERVATION", ack=False) as t:
        telescope = str(t.getcell("TELESCOPE_NAME", 0))
    return {"columns": columns, "freqs": freqs, "widths": widths, "corr": corr, "ra": ra, "dec": dec, "names": names,
            "positions": positions, "dish": dish, "mount": mount, "telescope": telescope}


def write_subband(source: dict, path: Path, channels, *, reverse: bool = False, ra_offset_rad: float = 0.0) -> Path:
    """The channels (a slice or index list) of ``source`` (read_ms) as an MS of their own, in
    decreasing frequency with ``reverse``, optionally pointed elsewhere."""
    from spectropol.io.ms_writer import write_ms

    c = source["columns"]
    index = np.arange(len(source["freqs"]))[channels]
    if reverse:
        index = index[::-1]
    width = float(np.median(source["widths"])) * (-1.0 if reverse else 1.0)
    noise = float(1.0 / np.sqrt(c["WEIGHT"][0, 0]))
    write_ms(path, data=c["DATA"][:, index, :], uvw=c["UVW"], time=c["TIME"], ant1=c["ANTENNA1"], ant2=c["ANTENNA2"],
             integration_s=float(c["INTERVAL"][0]), freqs=source["freqs"][index], chan_width_hz=width,
             corr_names=source["corr"], ra=source["ra"] + ra_offset_rad, dec=source["dec"],
             antenna_names=source["names"],
             antenna_itrf_m=source["positions"], dish_diameter_m=source["dish"], telescope=source["telescope"],
             noise_jy=noise, flags=c["FLAG"][:, index, :], mount=source["mount"])
    return path


def add_spectral_window(ms: Path, offset_hz: float) -> None:
    """A second spectral window ``offset_hz`` above the first (and its data description), used by
    the second half of the rows."""
    from casacore.tables import table

    with table(f"{ms}::SPECTRAL_WINDOW", readonly=False, ack=False) as t:
        t.addrows(1)
        t.putcell("CHAN_FREQ", 1, t.getcell("CHAN_FREQ", 0) + offset_hz)
        for column in ("CHAN_WIDTH", "EFFECTIVE_BW", "RESOLUTION"):
            t.putcell(column, 1, t.getcell(column, 0))
        t.putcell("NUM_CHAN", 1, t.getcell("NUM_CHAN", 0))
    with table(f"{ms}::DATA_DESCRIPTION", readonly=False, ack=False) as t:
        t.addrows(1)
        t.putcell("SPECTRAL_WINDOW_ID", 1, 1)
        t.putcell("POLARIZATION_ID", 1, 0)
    with table(str(ms), readonly=False, ack=False) as t:
        ddid = t.getcol("DATA_DESC_ID")
        ddid[t.nrows() // 2:] = 1
        t.putcol("DATA_DESC_ID", ddid)
