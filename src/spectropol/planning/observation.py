"""What the input holds, read before any job runs: one or more Measurement Sets (a path, a list,
or glob patterns), one or more spectral windows of each (a number, a list, or ``all``), joined into
one channel axis in increasing frequency. Each output channel keeps its identity (the MS, its
spectral window and its channel there).

Only small subtables are read (SPECTRAL_WINDOW, DATA_DESCRIPTION, POLARIZATION, FIELD) and file
sizes; never a column of a main table. What can be refused from that is refused here, in one line
that names the files: channels that overlap in frequency (within one MS, the mark of
baseline-dependent averaging), phase centres further apart than the tolerance, inputs whose
correlations form different Stokes parameters, and correlations that form none.
"""

from __future__ import annotations

import dataclasses
import glob
import os

import numpy as np

from ..constants import ARCSEC, STOKES
from ..errors import SpectropolError

# Relative frequency difference below which two channels count as the same frequency.
FREQUENCY_TOLERANCE = 1e-9
# Bytes a (row, channel, correlation) takes in an MS: complex64 data, a flag and a float weight.
BYTES_PER_VISIBILITY = 13.0


class PlanError(SpectropolError):
    """The config asks for something the data cannot give; the message names the file or option."""


@dataclasses.dataclass(frozen=True)
class ChannelSource:
    """Where an output channel comes from: the MS (an index into Observation.inputs), its spectral
    window and the channel there; frequency and width in Hz."""

    ms_index: int
    spw: int
    spw_channel: int
    freq_hz: float
    width_hz: float


@dataclasses.dataclass(frozen=True)
class Observation:
    """The input as planning needs it: the MS paths (the demo's, which a rule simulates, when
    ``demo``), every output channel in increasing frequency, the Stokes parameters the correlations
    form, and an estimate of the visibilities per channel (rows, for job sizing)."""

    inputs: tuple[str, ...]
    channels: tuple[ChannelSource, ...]
    stokes: tuple[str, ...]
    rows_per_channel: float
    demo: bool = False
    cubes: dict | None = None      # input.cubes: {"Q": [paths], "U": [...], optional "I", "V", "freqs": path}
    image_px: int | None = None    # with cubes: the images' larger side
    telescopes: tuple[str, ...] = ()  # each MS's OBSERVATION::TELESCOPE_NAME (empty for the demo and cubes)
    input_bytes: tuple[int, ...] = ()  # each MS's size on disk (its fingerprint job reads all of it)

    @property
    def nchan(self) -> int:
        return len(self.channels)


def expand_inputs(ms, key: str = "input.ms", what: str = "Measurement Set") -> list[str]:
    """input.ms (or another ``key``) as a list of paths: one path, a list, and glob patterns (sorted matches)."""
    items = [ms] if isinstance(ms, str) else list(ms)
    paths = []
    for item in items:
        if glob.has_magic(item):
            matches = sorted(glob.glob(item))
            if not matches:
                raise PlanError(f"{key}: {item} matches no {what}")
            paths += matches
        else:
            paths.append(item)
    duplicates = sorted({p for p in paths if paths.count(p) > 1})
    if duplicates:
        raise PlanError(f"{key}: {duplicates[0]} is given more than once")
    return paths


def observe_cubes(cubes: dict) -> Observation:
    """The Observation of FITS images made elsewhere (input.cubes), from their headers only: the
    channels are Stokes Q's planes in increasing frequency (the cube stage checks the others)."""
    from ..io.fits_cubes import collect_stokes, read_frequency_file

    paths = {s.upper(): expand_inputs(cubes[s], f"input.cubes.{s}", "FITS file") for s in "iquv" if cubes.get(s)}
    for stokes, files in paths.items():
        missing = [f for f in files if not os.path.isfile(f)]
        if missing:
            raise PlanError(f"{missing[0]}: no such FITS file (input.cubes.{stokes.lower()})")
    freqs_file = cubes.get("freqs")
    try:
        given = read_frequency_file(freqs_file) if freqs_file else None
        q = collect_stokes(paths["Q"], "Q", given)
    except SpectropolError as err:
        raise PlanError(str(err)) from None
    except OSError as err:
        raise PlanError(f"{freqs_file}: cannot be read ({err.strerror})") from None
    freqs = q.freqs_hz
    widths = np.abs(np.gradient(freqs)) if len(freqs) > 1 else np.ones(1)
    channels = tuple(ChannelSource(0, 0, c, float(f), float(w)) for c, (f, w) in enumerate(zip(freqs, widths)))
    inputs = tuple(f for s in STOKES for f in paths.get(s, ()))
    return Observation(inputs=inputs, channels=channels, stokes=tuple(s for s in STOKES if s in paths),
                       rows_per_channel=0.0, cubes=paths | ({"freqs": freqs_file} if freqs_file else {}),
                       image_px=max(q.shape))


def _chosen_spws(info, spw) -> list:
    """The SpectralWindowInfo of ``info`` that input.spw selects."""
    available = [w.spw for w in info.spws]
    if spw is None:
        if len(available) != 1:
            raise PlanError(f"{info.ms}: has {len(available)} spws {available}; choose one with input.spw in the "
                            "config (a number, a list, or all)")
        return list(info.spws)
    if spw == "all":
        return list(info.spws)
    wanted = [spw] if isinstance(spw, int) else list(spw)
    missing = [w for w in wanted if w not in available]
    if missing:
        raise PlanError(f"{info.ms}: spw {missing[0]} is not in the data (available: {available})")
    return [w for w in info.spws if w.spw in wanted]


def _check_baseline_dependent_averaging(info, spws) -> None:
    """Spectral windows of one MS that cover the same band are how DP3 writes baseline-dependent
    averaging (each averaging in its own SPW): their channels cannot be joined into one axis."""
    bands = sorted(((min(w.freqs_hz) - w.widths_hz[0] / 2, max(w.freqs_hz) + w.widths_hz[0] / 2, w) for w in spws),
                   key=lambda band: band[:2])
    for (lo_a, hi_a, a), (lo_b, hi_b, b) in zip(bands, bands[1:]):
        if lo_b < hi_a * (1 - FREQUENCY_TOLERANCE):
            overlapping = [w for _, _, w in bands]
            counts = ", ".join(str(len(w.freqs_hz)) for w in overlapping)
            raise PlanError(
                f"{info.ms}: spectral windows {[w.spw for w in overlapping]} ({counts} channels) cover the same band, "
                "as baseline-dependent averaging writes them; image one with input.spw, or expand the MS to "
                "regular channels first (DP3's BDA expander)")


def _check_overlaps(channels: list[ChannelSource], inputs: list[str]) -> None:
    """Channels of different (MS, SPW) that overlap in frequency, or share one, are refused."""
    for a, b in zip(channels, channels[1:]):
        if (a.ms_index, a.spw) == (b.ms_index, b.spw):
            continue
        gap = b.freq_hz - a.freq_hz
        if gap <= FREQUENCY_TOLERANCE * b.freq_hz or gap < 0.5 * (a.width_hz + b.width_hz) * (1 - 1e-6):
            what = "share the frequency" if gap <= FREQUENCY_TOLERANCE * b.freq_hz else "overlap at"
            raise PlanError(f"{inputs[a.ms_index]} (spw {a.spw}) and {inputs[b.ms_index]} (spw {b.spw}): channels "
                            f"{what} {a.freq_hz / 1e6:.6f} MHz; give each frequency once")


def _check_phase_centres(infos, field, tolerance_arcsec: float) -> None:
    """Every input must point where the first does (the field chosen, or the only one)."""
    centres = []
    for info in infos:
        if field is None and len(info.fields) != 1:
            continue  # several fields and none chosen: the inspect job refuses it, naming them
        index = 0 if field is None else field
        if index >= len(info.fields):
            raise PlanError(f"{info.ms}: field {index} is not in the data ({len(info.fields)} fields)")
        centres.append((info.ms, info.fields[index][1], info.fields[index][2]))
    for ms, ra, dec in centres[1:]:
        ms0, ra0, dec0 = centres[0]
        cos_sep = np.sin(dec) * np.sin(dec0) + np.cos(dec) * np.cos(dec0) * np.cos(ra - ra0)
        separation = float(np.arccos(np.clip(cos_sep, -1.0, 1.0))) / ARCSEC
        if separation > tolerance_arcsec:
            raise PlanError(f"{ms0} and {ms}: phase centres are {separation:.1f} arcsec apart (more than "
                            f"input.phase_centre_tolerance_arcsec = {tolerance_arcsec:g})")


def _check_stokes(infos, chosen) -> tuple[str, ...]:
    """The Stokes parameters every chosen SPW forms: the same for all, and at least one."""
    stokes = None
    for info, spws in zip(infos, chosen):
        for w in spws:
            if not w.stokes:
                raise PlanError(f"{info.ms}: correlations {', '.join(w.corr_names)} of spw {w.spw} form no Stokes "
                                "parameter (Stokes I needs XX and YY, or RR and LL)")
            if stokes is None:
                stokes, first = w.stokes, (info.ms, w)
            elif w.stokes != stokes:
                raise PlanError(f"{first[0]} (spw {first[1].spw}: {', '.join(first[1].corr_names)}) and {info.ms} "
                                f"(spw {w.spw}: {', '.join(w.corr_names)}): correlations form different Stokes "
                                f"({', '.join(stokes)} and {', '.join(w.stokes)})")
    return stokes


def observe(config: dict, describe=None) -> Observation:
    """The Observation of the configured input: for the demo from the simulate section, else from
    each MS's subtables (``describe``, io.ms.describe_ms by default). Raises PlanError for what
    the data cannot give (module docstring)."""
    inputs_config = config["input"]
    if inputs_config.get("cubes"):
        if inputs_config["ms"] is not None:
            raise PlanError("config: give input.ms (to image) or input.cubes (images made elsewhere), not both")
        return observe_cubes(inputs_config["cubes"])
    if inputs_config["ms"] is None:
        sim = config["simulate"]
        freqs = sim["start_freq_hz"] + sim["chan_width_hz"] * np.arange(sim["nchan"])
        channels = tuple(ChannelSource(0, 0, c, float(f), float(sim["chan_width_hz"])) for c, f in enumerate(freqs))
        return Observation(inputs=(f"{config['work_dir']}/ms/demo.ms",), channels=channels, stokes=STOKES,
                           rows_per_channel=0.0, demo=True)
    if describe is None:
        from ..io.ms import describe_ms as describe
    paths = expand_inputs(inputs_config["ms"])
    try:
        infos = [describe(path) for path in paths]
    except SpectropolError as err:
        raise PlanError(str(err)) from None
    chosen = [_chosen_spws(info, inputs_config["spw"]) for info in infos]
    for info, spws in zip(infos, chosen):
        _check_baseline_dependent_averaging(info, spws)
    stokes = _check_stokes(infos, chosen)
    _check_phase_centres(infos, inputs_config["field"], inputs_config["phase_centre_tolerance_arcsec"])
    channels = [ChannelSource(k, w.spw, c, f, width) for k, spws in enumerate(chosen) for w in spws
                for c, (f, width) in enumerate(zip(w.freqs_hz, w.widths_hz))]
    channels.sort(key=lambda s: (s.freq_hz, s.ms_index, s.spw, s.spw_channel))
    _check_overlaps(channels, paths)
    ncorr = max(len(w.corr_names) for spws in chosen for w in spws)
    visibilities = sum(info.size_bytes for info in infos) / BYTES_PER_VISIBILITY / ncorr
    total_channels = sum(len(w.freqs_hz) for info in infos for w in info.spws)
    return Observation(inputs=tuple(paths), channels=tuple(channels), stokes=stokes,
                       rows_per_channel=visibilities / max(total_channels, 1),
                       telescopes=tuple(info.telescope for info in infos),
                       input_bytes=tuple(info.size_bytes for info in infos))
