"""Writing Measurement Sets: the simulator's output, and test inputs cut from it (subbands, other
frequency orders). One spectral window, one field, every subtable WSClean and CASA need."""

from __future__ import annotations

import numpy as np

from ..kernels.stokes import CORR_NUMBERS


def write_ms(path, *, data, uvw, time, ant1, ant2, integration_s, freqs, chan_width_hz, corr_names, ra, dec,
             antenna_names, antenna_itrf_m, dish_diameter_m, telescope, noise_jy, flags=None, mount="X-Y"):
    """A Measurement Set at ``path`` with one spectral window and one field that WSClean and CASA
    read: DATA (row, chan, corr) in tiles of one channel, FLAG, WEIGHT = 1/noise^2, and every
    required subtable filled. ``chan_width_hz`` may be negative (decreasing frequencies)."""
    from casacore.tables import default_ms, makearrcoldesc, maketabdesc, table

    nrow, nchan, ncorr = data.shape
    # One channel per tile: reading one channel touches only its tiles (about 40x faster than
    # channel-contiguous tiles; docs/architecture.md), full reads barely slower.
    rows_per_tile = max(1, min(nrow, 65536 // ncorr))
    tile = {"DEFAULTTILESHAPE": np.array([ncorr, 1, rows_per_tile], dtype=np.int32)}
    desc = maketabdesc([
        makearrcoldesc("DATA", 0j, shape=[nchan, ncorr], valuetype="complex", datamanagertype="TiledColumnStMan",
                       datamanagergroup="TiledData"),
        makearrcoldesc("FLAG", False, shape=[nchan, ncorr], valuetype="boolean", datamanagertype="TiledColumnStMan",
                       datamanagergroup="TiledFlag"),
        makearrcoldesc("WEIGHT", 1.0, shape=[ncorr], valuetype="float"),
        makearrcoldesc("SIGMA", 1.0, shape=[ncorr], valuetype="float"),
    ])
    dminfo = {
        "*1": {"TYPE": "TiledColumnStMan", "NAME": "TiledData", "SPEC": tile, "COLUMNS": ["DATA"]},
        "*2": {"TYPE": "TiledColumnStMan", "NAME": "TiledFlag", "SPEC": tile, "COLUMNS": ["FLAG"]},
    }
    ms = default_ms(str(path), desc, dminfo)
    ms.addrows(nrow)
    ms.putcol("DATA", data)
    ms.putcol("FLAG", np.zeros(data.shape, dtype=bool) if flags is None else flags)
    ms.putcol("WEIGHT", np.full((nrow, ncorr), 1.0 / noise_jy**2, dtype=np.float32))
    ms.putcol("SIGMA", np.full((nrow, ncorr), noise_jy, dtype=np.float32))
    ms.putcol("UVW", uvw)
    ms.putcol("TIME", time)
    ms.putcol("TIME_CENTROID", time)
    ms.putcol("INTERVAL", np.full(nrow, integration_s))
    ms.putcol("EXPOSURE", np.full(nrow, integration_s))
    ms.putcol("ANTENNA1", ant1.astype(np.int32))
    ms.putcol("ANTENNA2", ant2.astype(np.int32))
    for name in ("DATA_DESC_ID", "FIELD_ID", "SCAN_NUMBER", "ARRAY_ID", "OBSERVATION_ID", "PROCESSOR_ID", "STATE_ID"):
        ms.putcol(name, np.zeros(nrow, dtype=np.int32) if name != "SCAN_NUMBER" else np.ones(nrow, dtype=np.int32))
    ms.putcol("FLAG_ROW", np.zeros(nrow, dtype=bool))
    # default_ms labels UVW as ITRF; they are J2000 (docs/architecture.md).
    measinfo = ms.getcolkeyword("UVW", "MEASINFO")
    measinfo["Ref"] = "J2000"
    ms.putcolkeyword("UVW", "MEASINFO", measinfo)
    ms.close()

    nant = len(antenna_names)
    with table(f"{path}::ANTENNA", readonly=False, ack=False) as t:
        t.addrows(nant)
        t.putcol("NAME", list(antenna_names))
        t.putcol("STATION", list(antenna_names))
        t.putcol("TYPE", ["GROUND-BASED"] * nant)
        t.putcol("MOUNT", [mount] * nant)
        t.putcol("POSITION", np.asarray(antenna_itrf_m, dtype=np.float64))
        t.putcol("OFFSET", np.zeros((nant, 3)))
        t.putcol("DISH_DIAMETER", np.full(nant, dish_diameter_m))
        t.putcol("FLAG_ROW", np.zeros(nant, dtype=bool))

    receptors = ["X", "Y"] if corr_names[0][0] in "XY" else ["R", "L"]
    with table(f"{path}::FEED", readonly=False, ack=False) as t:
        t.addrows(nant)
        t.putcol("ANTENNA_ID", np.arange(nant, dtype=np.int32))
        t.putcol("FEED_ID", np.zeros(nant, dtype=np.int32))
        t.putcol("SPECTRAL_WINDOW_ID", np.full(nant, -1, dtype=np.int32))
        t.putcol("TIME", np.full(nant, time[0]))
        t.putcol("INTERVAL", np.full(nant, time[-1] - time[0] + integration_s))
        t.putcol("NUM_RECEPTORS", np.full(nant, 2, dtype=np.int32))
        t.putcol("BEAM_ID", np.full(nant, -1, dtype=np.int32))
        t.putcol("BEAM_OFFSET", np.zeros((nant, 2, 2)))
        t.putcol("POLARIZATION_TYPE", np.array([receptors] * nant))
        t.putcol("POL_RESPONSE", np.tile(np.eye(2, dtype=np.complex64), (nant, 1, 1)))
        t.putcol("POSITION", np.zeros((nant, 3)))
        t.putcol("RECEPTOR_ANGLE", np.tile([0.0, np.pi / 2], (nant, 1)))

    with table(f"{path}::FIELD", readonly=False, ack=False) as t:
        t.addrows(1)
        direction = np.array([[[ra, dec]]])
        for column in ("PHASE_DIR", "DELAY_DIR", "REFERENCE_DIR"):
            t.putcol(column, direction)
        t.putcol("NAME", ["DEMO"])
        t.putcol("CODE", [""])
        t.putcol("TIME", np.array([time[0]]))
        t.putcol("NUM_POLY", np.zeros(1, dtype=np.int32))
        t.putcol("SOURCE_ID", np.full(1, -1, dtype=np.int32))

    with table(f"{path}::SPECTRAL_WINDOW", readonly=False, ack=False) as t:
        t.addrows(1)
        t.putcol("CHAN_FREQ", freqs[None, :])
        for column in ("CHAN_WIDTH", "EFFECTIVE_BW", "RESOLUTION"):
            t.putcol(column, np.full((1, nchan), chan_width_hz))
        t.putcol("NUM_CHAN", np.array([nchan], dtype=np.int32))
        t.putcol("REF_FREQUENCY", np.array([freqs[nchan // 2]]))
        t.putcol("TOTAL_BANDWIDTH", np.array([nchan * abs(chan_width_hz)]))
        t.putcol("MEAS_FREQ_REF", np.array([5], dtype=np.int32))  # TOPO
        t.putcol("NAME", ["SPW0"])
        t.putcol("NET_SIDEBAND", np.ones(1, dtype=np.int32))
        t.putcol("FREQ_GROUP_NAME", [""])

    with table(f"{path}::POLARIZATION", readonly=False, ack=False) as t:
        t.addrows(1)
        t.putcol("NUM_CORR", np.array([ncorr], dtype=np.int32))
        t.putcol("CORR_TYPE", np.array([[CORR_NUMBERS[c] for c in corr_names]], dtype=np.int32))
        receptor = {"X": 0, "Y": 1, "R": 0, "L": 1}
        t.putcol("CORR_PRODUCT", np.array([[[receptor[c[0]], receptor[c[1]]] for c in corr_names]], dtype=np.int32))

    with table(f"{path}::DATA_DESCRIPTION", readonly=False, ack=False) as t:
        t.addrows(1)
        t.putcol("SPECTRAL_WINDOW_ID", np.zeros(1, dtype=np.int32))
        t.putcol("POLARIZATION_ID", np.zeros(1, dtype=np.int32))

    with table(f"{path}::OBSERVATION", readonly=False, ack=False) as t:
        t.addrows(1)
        t.putcol("TELESCOPE_NAME", [telescope])
        t.putcol("OBSERVER", ["spectropol simulate"])
        t.putcol("PROJECT", ["spectropol demo"])
        t.putcol("TIME_RANGE", np.array([[time[0], time[-1] + integration_s]]))
        t.putcol("RELEASE_DATE", np.array([time[0]]))
        t.putcol("SCHEDULE_TYPE", [""])

    with table(f"{path}::PROCESSOR", readonly=False, ack=False) as t:
        t.addrows(1)
        t.putcol("TYPE", ["CORRELATOR"])
        t.putcol("SUB_TYPE", ["SIMULATOR"])
        t.putcol("TYPE_ID", np.zeros(1, dtype=np.int32))
        t.putcol("MODE_ID", np.zeros(1, dtype=np.int32))
