"""Typed options of every stage, one frozen dataclass per config section (or part of one).

The defaults here are the schema's defaults (config/config.schema.yaml); tests/test_config.py
fails when this module, the schema, config/config.yaml and the command line disagree. Field names
carry units where the value has one; ``from_config`` maps a config section (whose keys are what
users write) onto the fields. This module imports nothing heavy: the workflow reads it while the
DAG is built.
"""

from __future__ import annotations

import dataclasses
from typing import Any


def _from_section(cls, section: dict, renames: dict[str, str] | None = None):
    """An options instance from a config section: keys renamed to fields, unknown keys refused."""
    renames = renames or {}
    names = {f.name for f in dataclasses.fields(cls)}
    values = {}
    for key, value in section.items():
        field = renames.get(key, key)
        if field not in names:
            raise KeyError(f"{cls.__name__} has no option {key!r}")
        values[field] = value
    return cls(**values)


@dataclasses.dataclass(frozen=True)
class SelectionOptions:
    """Which data of each Measurement Set are read (config section ``input``; which spectral
    windows is the Observation's to resolve, per MS)."""

    column: str = "DATA"
    field: int | None = None
    time_range_utc: tuple[str, str] | None = None  # ISO-8601 UTC start and end; None: every time
    phase_centre_tolerance_arcsec: float = 1.0     # inputs may point this far apart

    @classmethod
    def from_config(cls, section: dict) -> SelectionOptions:
        time_range = section.get("time_range")
        return cls(column=section.get("column", cls.column), field=section.get("field", cls.field),
                   time_range_utc=tuple(time_range) if time_range else None,
                   phase_centre_tolerance_arcsec=section.get("phase_centre_tolerance_arcsec",
                                                             cls.phase_centre_tolerance_arcsec))


@dataclasses.dataclass(frozen=True)
class SplitOptions:
    """Corrections applied to each visibility when channels are split (config section ``input``)."""

    derotate_parallactic_angle: bool = False  # rotate Q and U back by the feeds' parallactic angle (alt-az mounts)

    @classmethod
    def from_config(cls, section: dict) -> SplitOptions:
        return cls(derotate_parallactic_angle=section.get("derotate_parallactic_angle", cls.derotate_parallactic_angle))


@dataclasses.dataclass(frozen=True)
class GeometryOptions:
    """Image size and cell shared by every channel (part of config section ``imaging``)."""

    size_px: int = 512
    cell_arcsec: float | None = 20.0
    pixels_per_beam: float = 4.0

    @classmethod
    def from_config(cls, section: dict) -> GeometryOptions:
        return cls(size_px=section.get("size", cls.size_px), cell_arcsec=section.get("cell_arcsec", cls.cell_arcsec),
                   pixels_per_beam=section.get("pixels_per_beam", cls.pixels_per_beam))


@dataclasses.dataclass(frozen=True)
class ImagingOptions:
    """How one channel is gridded (part of config section ``imaging``, overridable per channel)."""

    weighting: str = "briggs"   # natural, uniform or briggs
    robust: float = 0.0          # Briggs robustness, -2 .. 2
    wgridding: bool = True       # correct the w-term
    epsilon: float = 2.0e-5      # gridder accuracy; below 1e-5 the gridder works in double precision
    minuv_l: float | None = None  # shortest baseline used (wavelengths); None: all
    maxuv_l: float | None = None  # longest baseline used (wavelengths); None: all

    KEYS = ("weighting", "robust", "wgridding", "epsilon", "minuv_l", "maxuv_l")

    @classmethod
    def from_config(cls, section: dict) -> ImagingOptions:
        return _from_section(cls, {k: section[k] for k in cls.KEYS if k in section})


@dataclasses.dataclass(frozen=True)
class CleanOptions:
    """Deconvolution of one channel (config section ``clean``, overridable per channel)."""

    niter: int = 1000            # minor-cycle iterations per Stokes group, in total; 0: dirty images only
    gain: float = 0.1            # fraction of the peak removed per iteration
    mgain: float = 0.8           # a major cycle starts when the peak fell by this fraction
    threshold_jy: float = 0.0    # absolute stopping threshold (Jy/beam)
    auto_threshold: float = 3.0  # stopping threshold in units of the residual's MAD rms (0 = off)
    auto_mask: float = 0.0       # clean to this many sigma unmasked first, then only within that mask
    max_major: int = 20          # major cycles at most
    on_divergence: str = "stop"  # a residual peak that grows: stop at the best model (stop) or fail (error)

    RENAMES = {"threshold": "threshold_jy"}

    @classmethod
    def from_config(cls, section: dict) -> CleanOptions:
        return _from_section(cls, section, cls.RENAMES)


@dataclasses.dataclass(frozen=True)
class ChannelSettings:
    """What images one channel: the global imaging and CLEAN options with its overrides applied."""

    imaging: ImagingOptions
    clean: CleanOptions

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ChannelSettings:
        return cls(ImagingOptions(**d["imaging"]), CleanOptions(**d["clean"]))


@dataclasses.dataclass(frozen=True)
class CubeOptions:
    """How the channel images become a cube (config section ``cube``)."""

    chunk_px: int = 256          # spatial chunk of the cube store
    image: str = "restored"      # restored (when CLEAN runs) or dirty
    common_beam: bool = False    # convolve every channel to one beam that contains them all
    shard: bool = False          # a file per channel plane (Zarr v3 shard) instead of per chunk

    @classmethod
    def from_config(cls, section: dict) -> CubeOptions:
        return _from_section(cls, section, {"chunk": "chunk_px"})


@dataclasses.dataclass(frozen=True)
class DaskOptions:
    """Where the array stages' Dask graphs run (config section ``dask``)."""

    scheduler: str = "threads"   # threads, processes, synchronous or tcp://host:port of a distributed scheduler
    threads: int = 2             # workers of the local scheduler (and the job's cores)

    @classmethod
    def from_config(cls, section: dict) -> DaskOptions:
        return _from_section(cls, section)


@dataclasses.dataclass(frozen=True)
class MomentsOptions:
    """Faraday moments (config section ``moments``)."""

    weighting: str = "none"      # none, or noise: channels weighted by 1/rms^2 of their plane

    @classmethod
    def from_config(cls, section: dict) -> MomentsOptions:
        return _from_section(cls, section)


@dataclasses.dataclass(frozen=True)
class RMSynthesisOptions:
    """RM synthesis (part of config section ``faraday``)."""

    weighting: str = "variance"         # uniform, or variance: 1/sigma^2 of each channel's Q and U
    dphi_rad_m2: float | None = None     # Faraday-depth step; None: RMSF FWHM / oversample
    phi_max_rad_m2: float | None = None  # largest |phi|; None: max(sqrt(3)/max channel width in lambda^2, 10 FWHM)
    oversample: float = 10.0             # samples per RMSF FWHM when the step is not given
    chunk_mb: float = 256.0              # memory per Dask task

    RENAMES = {"dphi": "dphi_rad_m2", "phi_max": "phi_max_rad_m2"}

    @classmethod
    def from_config(cls, section: dict) -> RMSynthesisOptions:
        keys = ("weighting", "dphi", "phi_max", "oversample", "chunk_mb")
        return _from_section(cls, {k: section[k] for k in keys if k in section}, cls.RENAMES)


@dataclasses.dataclass(frozen=True)
class RMCleanOptions:
    """RM-CLEAN (part of config section ``faraday``)."""

    cutoff_sigma: float = 3.0    # stop at this many times the theoretical FDF noise
    gain: float = 0.1            # fraction of the peak removed per iteration
    max_iter: int = 1000         # iterations per pixel at most
    mask_sigma: float = 5.0      # clean only pixels whose dirty FDF peak reaches this many sigma

    @classmethod
    def from_config(cls, section: dict) -> RMCleanOptions:
        return cls(cutoff_sigma=section.get("clean_cutoff_sigma", cls.cutoff_sigma),
                   gain=section.get("clean_gain", cls.gain), max_iter=section.get("clean_max_iter", cls.max_iter),
                   mask_sigma=section.get("clean_mask_sigma", cls.mask_sigma))


@dataclasses.dataclass(frozen=True)
class FaradayProductsOptions:
    """What the one-pass Faraday-depth stage keeps (part of config section ``faraday``)."""

    candidate_snr: float = 5.0   # pixels whose FDF peak reaches this SNR: peak refined exactly, spectra kept
    save_fdf: bool = False       # also write the full FDF cubes (dirty, clean, components): N_pix x N_phi each
    fdf_fits: bool = False       # and export those cubes as FITS (needs save_fdf)
    stokes_i_snr: float = 10.0   # pixels whose band-mean Stokes I reaches this SNR get a Stokes I model

    @classmethod
    def from_config(cls, section: dict) -> FaradayProductsOptions:
        return _from_section(cls, {k: section[k] for k in ("candidate_snr", "save_fdf", "fdf_fits", "stokes_i_snr")
                                   if k in section})


@dataclasses.dataclass(frozen=True)
class CatalogueOptions:
    """Source finding and measurement (config section ``catalogue``)."""

    threshold_sigma: float = 6.0  # islands above this many local rms
    min_snr: float = 8.0          # keep sources whose FDF peak is at least this many times the FDF noise
    box_px: int = 32              # side of the boxes of the background and rms mesh
    resolved_snr: float = 10.0    # sources this bright in band-mean I may be found resolved (Gaussian fit)
    complexity_snr: float = 5.0   # clean components count for complexity where their restored model reaches this SNR
    complexity_m2_fwhm: float = 0.3  # complex when m2_CC exceeds this many RMSF FWHM (or Ncomp > 1)
    complexity_sigma_add: float = 3.0  # complex when sigma_add exceeds this many times its error
    flag_snr: float = 10.0        # snr_flag below this FDF-peak SNR
    stokes_i_max_order: int = 2   # Stokes I log-polynomial orders 0..this, chosen by AICc
    fractional: bool = False      # RM synthesis of q = Q/I, u = U/I (the Stokes I model) per source
    leakage_window_fwhm: float = 1.0  # leakage_flag: peak within this many RMSF FWHM of phi = 0 ...
    leakage_max_fracpol: float | None = 0.02  # ... and fractional polarisation below this (None: any)
    local_rm_neighbours: int = 20  # local_rm_flag: RM against those of this many nearest sources
    # none | airy | gaussian (from the dish diameter) | fits (primary_beam_fits) | everybeam (LOFAR,
    # from the MS) | katbeam (MeerKAT L and UHF): the last two written by the primary_beam stage
    primary_beam: str = "none"
    dish_diameter_m: float | None = None  # None: the Measurement Set's, or the telescope's (kernels/primary_beam.py)
    primary_beam_fits: str | None = None  # the beam as a FITS image or cube (model fits, or the stage's)
    primary_beam_min: float = 0.1  # sources where the beam's response is below this are not catalogued

    @classmethod
    def from_config(cls, section: dict) -> CatalogueOptions:
        return _from_section(cls, section, {"box": "box_px"})


@dataclasses.dataclass(frozen=True)
class QAOptions:
    """The run's QA summary (config section ``qa``)."""

    outlier_k: float = 3.0       # a channel is an outlier when its rms exceeds k x the median

    @classmethod
    def from_config(cls, section: dict) -> QAOptions:
        return _from_section(cls, section)


@dataclasses.dataclass(frozen=True)
class SimulateOptions:
    """The simulated demo observation (config section ``simulate``, sky model and layout apart)."""

    ra_deg: float = 60.0
    dec_deg: float = -30.0
    start_freq_hz: float = 120.0e6
    chan_width_hz: float = 1.0e6
    nchan: int = 64
    ntimes: int = 32
    integration_s: float = 10.0
    hour_angle_span_h: float = 6.0
    noise_jy: float = 1.0
    feeds: str = "linear"
    seed: int = 1

    @classmethod
    def from_config(cls, section: dict) -> SimulateOptions:
        return _from_section(cls, {k: v for k, v in section.items() if k not in ("skymodel", "layout")})


def as_dict(options: Any) -> dict:
    """Plain values of an options instance, as rules pass them to scripts (and Snakemake compares
    between runs to decide what reruns)."""
    return dataclasses.asdict(options)
