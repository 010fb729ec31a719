"""The Plan: every channel with its settings and block, the options of every stage, the product
paths and the resources of every rule, as a pure function of the config and the Observation.

rules/common.smk binds the Plan to Snakemake and nothing else. Reading the workflow costs
milliseconds whatever the size of the data: observe() reads small subtables only, and the channel
fingerprints, which do read the data, are a job of their own (rules/inspect.smk)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..constants import STOKES
from ..errors import SpectropolError
from ..kernels.moments import MOMENTS, QUANTITIES
from ..options import (
    CatalogueOptions,
    ChannelSettings,
    CleanOptions,
    CubeOptions,
    DaskOptions,
    FaradayProductsOptions,
    GeometryOptions,
    ImagingOptions,
    MomentsOptions,
    QAOptions,
    RMCleanOptions,
    RMSynthesisOptions,
    SelectionOptions,
    SimulateOptions,
    SplitOptions,
)
from .blocks import auto_block, channel_settings, channel_width, parse_channel_ranges, plan_blocks, work_per_channel_s
from .observation import ChannelSource, Observation, PlanError

RM_SYNTHESIS_MIN_CHANNELS = 2


def check_output_folder(path: str, key: str) -> None:
    """Refuse, before anything runs, an output folder that cannot be created or written."""
    absolute = Path(path).absolute()
    existing = absolute
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise PlanError(f"{path}: cannot create {key} there, {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PlanError(f"{path}: cannot write {key} there, {existing} is not writable")


@dataclasses.dataclass(frozen=True)
class Plan:
    """Everything the rules need, computed once from the config and the Observation."""

    work: str
    results: str
    inputs: tuple[str, ...]        # the MS paths (the demo's, made by the simulate rule, when demo)
    demo: bool
    cubes: dict | None             # input.cubes: the cube is made from these FITS images, nothing is imaged
    fingerprint: bool              # reruns follow the content of the MSs (fingerprint jobs), not file times
    channels: tuple[ChannelSource, ...]  # every output channel, in increasing frequency
    width: int                     # digits of channel names
    excluded: tuple[int, ...]
    blocks: dict[str, list[int]]   # {label: output channels}, in frequency order
    block_sources: dict[str, tuple[int, int]]  # {label: (MS index, spw)}: a block reads one window of one MS
    settings: tuple[ChannelSettings, ...]  # per output channel
    polarisation: bool             # Q and U can be formed: moments, Faraday stages and catalogue run
    cube_fits: bool                # evenly spaced channels: a FITS FREQ axis can describe them
    warnings: tuple[str, ...]
    selection: SelectionOptions
    split: SplitOptions
    geometry: GeometryOptions
    cube: CubeOptions
    moments: MomentsOptions
    rm_synthesis: RMSynthesisOptions
    rm_clean: RMCleanOptions | None  # None: no RM-CLEAN, peaks from the dirty FDF
    faraday_products: FaradayProductsOptions
    catalogue: CatalogueOptions
    qa: QAOptions
    dask: DaskOptions
    simulate: SimulateOptions
    imaging_threads: int
    channel_images: tuple[str, ...] = ("restored",)  # the image kinds each channel's store keeps: the cube's first
    input_bytes: tuple[int, ...] = ()  # each input MS's size (runtime of its fingerprint job)

    # -- inputs and channels ---------------------------------------------------------------------
    @property
    def nchan(self) -> int:
        return len(self.channels)

    @property
    def freqs_hz(self) -> np.ndarray:
        return np.array([c.freq_hz for c in self.channels])

    def ms_id(self, index: int) -> str:
        """The name of an input MS in work/ paths: its index in input order (ms000, ms001, ...)."""
        return f"ms{index:03d}"

    def ms_index(self, ms_id: str) -> int:
        return int(ms_id[2:])

    def block_ms_id(self, block: str) -> str:
        return self.ms_id(self.block_sources[block][0])

    def block_spw_channels(self, block: str) -> list[int]:
        """The block's channels as numbers in its spectral window."""
        return [self.channels[c].spw_channel for c in self.blocks[block]]

    def channel_name(self, channel: int) -> str:
        return f"{channel:0{self.width}d}"

    def block_settings(self, block: str) -> list[ChannelSettings]:
        return [self.settings[c] for c in self.blocks[block]]

    def channel_image_stores(self) -> list[str]:
        """Every imaged channel's image store, in frequency order."""
        return [f"{self.results}/channels/{label}/{self.channel_name(c)}.zarr"
                for label, channels in self.blocks.items() for c in channels]

    # -- products -------------------------------------------------------------------------------
    @property
    def stokes_i(self) -> bool:
        """The cube has Stokes I (always from an MS; from FITS where input.cubes gives it): the one
        pass then also writes the Stokes I model maps."""
        return self.polarisation and (self.cubes is None or "I" in self.cubes)

    def cube_fits_paths(self) -> dict[str, str]:
        return {stokes: f"{self.results}/cube/cube_{stokes}.fits" for stokes in STOKES}

    def moment_fits(self) -> dict[tuple[str, str], str]:
        return {(q, m): f"{self.results}/moments/{q}_{m}.fits" for q in QUANTITIES for m in MOMENTS}

    def faraday_fits(self, names: Sequence[str]) -> dict[str, str]:
        return {name: f"{self.results}/faraday/{name}.fits" for name in names}

    # -- resources (MB and minutes) ---------------------------------------------------------------
    def image_mem_mb(self, block: str, input_mb: float) -> int:
        """One channel at a time: its visibilities twice (Stokes and weights) plus about 12
        image-sized float planes with the oversampled gridding grid."""
        npix = self.geometry.size_px
        return int(300 + 3 * input_mb / len(self.blocks[block]) + 12 * npix * npix * 4 / 1e6 * 4)

    def image_runtime(self, block: str, input_mb: float) -> int:
        """Minutes for the block: gridding grows with visibilities and pixels, CLEAN with pixels and
        iterations; generous, since a job killed at its limit costs more than an idle reservation."""
        npix = self.geometry.size_px
        niter = max(s.clean.niter for s in self.block_settings(block))
        clean = niter / 1000 * (npix / 1024) ** 2 * 2
        return int(10 + input_mb / 50 + len(self.blocks[block]) * ((npix / 1024) ** 2 * 2 + clean))

    def split_runtime(self, block: str) -> int:
        return int(10 + len(self.blocks[block]) * 0.5)

    def cube_mem_mb(self) -> int:
        npix = self.geometry.size_px
        return int(400 + 6 * 4 * npix * npix * 4 / 1e6)

    @property
    def faraday_fdf_fits(self) -> bool:
        """The full FDF cubes are kept and exported as FITS."""
        return self.faraday_products.save_fdf and self.faraday_products.fdf_fits

    def faraday_grid_size(self) -> tuple[int, int]:
        """(channels, depths) of the Faraday stage: the grid of the imaged channels, as the stage
        will build it (the weights change which channels count, not the number of depths much)."""
        from ..kernels.faraday import faraday_grid

        excluded = set(self.excluded)
        freqs = np.array([c.freq_hz for k, c in enumerate(self.channels) if k not in excluded])
        grid = faraday_grid(freqs, dphi=self.rm_synthesis.dphi_rad_m2, phi_max=self.rm_synthesis.phi_max_rad_m2,
                            oversample=self.rm_synthesis.oversample)
        return len(freqs), len(grid.phi)

    def faraday_depth_mem_mb(self, threads: int) -> int:
        """From the tile the stage will choose: one tile per thread and the interpreter
        (stages.faraday.faraday_depth_mem_mb, checked against measured peaks in the tests)."""
        from ..stages.faraday import faraday_depth_mem_mb, faraday_region_px, faraday_tile_px, map_region_px

        nchan, nphi = self.faraday_grid_size()
        npix, clean = self.geometry.size_px, self.rm_clean is not None
        chunk = min(self.cube.chunk_px, npix)
        side = faraday_tile_px(npix, npix, nchan, nphi, clean, self.rm_synthesis.chunk_mb, threads, align=chunk)
        region = faraday_region_px(side, chunk, nchan, self.rm_synthesis.chunk_mb)
        return faraday_depth_mem_mb(nchan, nphi, side, clean, threads, region, map_region_px(region, npix, npix))

    # -- runtimes (minutes) of the cube-wide jobs, from their data ---------------------------------
    # Rates measured on this project's 2-core machine (docs/benchmarks.md), taken three times over
    # and 5 minutes added for start-up and a slow file system: a job SLURM kills at its limit costs
    # more than an idle reservation.
    def cube_bytes(self) -> float:
        """Bytes of the float32 I, Q, U, V cube."""
        return 4.0 * 4 * self.nchan * self.geometry.size_px ** 2

    @staticmethod
    def _minutes(seconds: float) -> int:
        return int(np.ceil(5 + 3 * seconds / 60.0))

    def fingerprint_runtime(self, ms_index: int) -> int:
        """The whole MS read and hashed: 365 MB/s measured, 50 MB/s allowed (a busy file system)."""
        size = self.input_bytes[ms_index] if ms_index < len(self.input_bytes) else 0
        return self._minutes(size / 50e6)

    def cube_runtime(self) -> int:
        """gather_cube, export_cube_fits, cube_from_fits: the cube read and written at 50 MB/s."""
        return self._minutes(2 * self.cube_bytes() / 50e6)

    def faraday_depth_seconds(self, threads: int) -> float:
        """The expected time of faraday_depth: RM synthesis and the peaks at 3.3e-10 s per channel x
        pixel x depth on a thread (64 channels x 512^2 x 401 depths: 1.1 s on 2), RM-CLEAN of every
        pixel 2.2e-9 (the diffuse benchmark: 0.9e-9), and the cube read at 50 MB/s."""
        nchan, nphi = self.faraday_grid_size()
        work = nchan * self.geometry.size_px ** 2 * nphi * (3.3e-10 + (2.2e-9 if self.rm_clean else 0.0))
        return work / max(threads, 1) + self.cube_bytes() / 50e6

    def faraday_depth_runtime(self, threads: int) -> int:
        return self._minutes(self.faraday_depth_seconds(threads))

    def faraday_fits_runtime(self) -> int:
        """The maps, and the full FDF cubes when they are exported, written at 50 MB/s."""
        _, nphi = self.faraday_grid_size()
        cubes = 4 * (2 if self.rm_clean else 1) if self.faraday_fdf_fits else 0
        return self._minutes((30 + cubes * nphi) * 4.0 * self.geometry.size_px ** 2 / 50e6)

    def catalogue_runtime(self) -> int:
        """Cut-outs of every source (the cube read once at worst) and the fits."""
        return self._minutes(self.cube_bytes() / 50e6 + 60)

    def faraday_fits_mem_mb(self) -> int:
        """A stored chunk of an FDF cube at a time, or the maps."""
        return int(600 + 2 * self.rm_synthesis.chunk_mb)

    def catalogue_mem_mb(self) -> int:
        """Image planes of a chunk of sources, and what measuring the sources' Faraday spectra
        holds (stages.catalogue.source_faraday_mb: a block of the synthesis matrix and a pass of
        sources, growing with the depths but not with the sources). benchmarks/scale.py found the
        catalogue at 1,047 MB against 833 asked at 4,096 channels x 20,119 depths, when it made the
        whole 659 MB synthesis matrix for its sources; it makes it a block at a time now."""
        from ..stages.catalogue import source_faraday_mb

        nchan, nphi = self.faraday_grid_size()
        return int(800 + 8 * self.geometry.size_px ** 2 * 4 / 1e6 * 4 + source_faraday_mb(nchan, nphi))

    def report_mem_mb(self) -> int:
        return int(1000 + 16 * self.geometry.size_px ** 2 * 4 / 1e6)

    def qa_mem_mb(self) -> int:
        return int(500 + 0.01 * self.nchan)

    def simulate_mem_mb(self) -> int:
        return int(500 + self.simulate.nchan * self.simulate.ntimes * 0.2)


def _groups(channels: Sequence[ChannelSource]) -> list[tuple[int, int]]:
    """(first, count) runs of consecutive output channels from one spectral window of one MS."""
    groups = []
    for k, c in enumerate(channels):
        if groups and (channels[k - 1].ms_index, channels[k - 1].spw) == (c.ms_index, c.spw):
            groups[-1][1] += 1
        else:
            groups.append([k, 1])
    return [tuple(g) for g in groups]


def _evenly_spaced(freqs: np.ndarray) -> bool:
    return len(freqs) < 2 or bool(np.allclose(np.diff(freqs), freqs[1] - freqs[0], rtol=1e-6, atol=0))


def _check_primary_beam(section: dict, observation: Observation, freqs: np.ndarray) -> None:
    """catalogue.primary_beam against the data: a beam file only with model fits, EveryBeam only
    for the telescopes it models from the Measurement Set, katbeam only within its bands."""
    from ..stages.primary_beam import EVERYBEAM_TELESCOPES, KATBEAM_TELESCOPES, katbeam_model

    model = section.get("primary_beam", "none")
    if model == "fits" and not section.get("primary_beam_fits"):
        raise PlanError("config: catalogue.primary_beam is fits but catalogue.primary_beam_fits names no beam file")
    if model != "fits" and section.get("primary_beam_fits"):
        raise PlanError(f"config: catalogue.primary_beam_fits is given but catalogue.primary_beam is {model}; "
                        "set it to fits to use the file")
    if model == "everybeam":
        if observation.demo or observation.cubes is not None:
            what = "the demo's simulated array" if observation.demo else "FITS cubes without a Measurement Set"
            raise PlanError(f"config: catalogue.primary_beam everybeam models the beam from a Measurement Set's "
                            f"stations; {what} has none (use airy, gaussian or fits)")
        for ms, telescope in zip(observation.inputs, observation.telescopes):
            if telescope.upper() not in EVERYBEAM_TELESCOPES:
                raise PlanError(f"{ms}: telescope {telescope or 'unnamed'!r} is not one EveryBeam models here "
                                f"({', '.join(EVERYBEAM_TELESCOPES)}); set catalogue.primary_beam to airy, gaussian "
                                "or fits")
    if model == "katbeam":
        for ms, telescope in zip(observation.inputs, observation.telescopes):
            if telescope.upper() not in KATBEAM_TELESCOPES:
                raise PlanError(f"{ms}: telescope {telescope or 'unnamed'!r} is not MeerKAT, the one katbeam "
                                "models; set catalogue.primary_beam to airy, gaussian or fits")
        try:
            katbeam_model(freqs, "config: catalogue.primary_beam katbeam")
        except SpectropolError as err:
            raise PlanError(str(err)) from None


def plan(config: dict, observation: Observation) -> Plan:
    """The Plan of a validated config (defaults filled) for ``observation``. Raises PlanError for
    channel lists outside the data or exclusions that leave nothing to image."""
    nchan = observation.nchan
    channels = config["channels"]
    try:
        excluded = parse_channel_ranges(channels["exclude"], nchan, "channels.exclude")
        raw = channel_settings({k: config["imaging"][k] for k in ImagingOptions.KEYS}, dict(config["clean"]),
                               channels["overrides"], nchan)
    except ValueError as err:
        raise PlanError(f"config: {err}") from None
    settings = tuple(ChannelSettings(ImagingOptions.from_config(s["imaging"]), CleanOptions.from_config(s["clean"]))
                     for s in raw)
    groups = _groups(observation.channels)
    block = channels["block"]
    if block == "auto":
        work = work_per_channel_s(observation.rows_per_channel, config["imaging"]["size"], config["clean"]["niter"])
        block = auto_block([count for _, count in groups], work)
    if observation.cubes is not None:
        if excluded:
            raise PlanError("config: channels.exclude selects channels to image; with input.cubes nothing is imaged "
                            "(blank a plane with NaN instead)")
        blocks = {}  # nothing to split or image: the cube is made from the FITS images
    else:
        blocks = plan_blocks(nchan, block, excluded, groups)
    if not blocks and observation.cubes is None:
        raise PlanError(f"config: channels.exclude leaves none of the {nchan} channels to image")
    sources = {label: (observation.channels[chans[0]].ms_index, observation.channels[chans[0]].spw)
               for label, chans in blocks.items()}
    warnings = []
    polarisation = {"Q", "U"} <= set(observation.stokes)
    name = ", ".join(observation.inputs) if len(observation.inputs) <= 2 else f"{observation.inputs[0]} and others"
    if not polarisation:
        warnings.append(f"{name}: correlations give Stokes {', '.join(observation.stokes)} only; "
                        "Faraday moments and RM synthesis need Q and U and are skipped")
    elif nchan - len(excluded) < RM_SYNTHESIS_MIN_CHANNELS:
        polarisation = False
        warnings.append(f"{name}: {nchan - len(excluded)} channel to image; RM synthesis needs at least "
                        f"{RM_SYNTHESIS_MIN_CHANNELS}, so the Faraday moments, RM synthesis and catalogue are skipped")
    freqs = np.array([c.freq_hz for c in observation.channels])
    cube_fits = _evenly_spaced(freqs) and observation.cubes is None  # FITS given: not written again
    if not cube_fits and observation.cubes is None:
        warnings.append(f"{name}: channels are not evenly spaced in frequency, which a FITS FREQ axis cannot "
                        "describe; the FITS cubes are not written (results/cube/cube.zarr has every frequency)")
    cube = CubeOptions.from_config(config["cube"])
    if config["clean"]["niter"] == 0:
        cube = dataclasses.replace(cube, image="dirty")  # restored images exist only when CLEAN runs
    geometry = GeometryOptions.from_config(config["imaging"])
    if observation.image_px:
        geometry = dataclasses.replace(geometry, size_px=observation.image_px)  # the images given, for resources
    faraday = config["faraday"]
    products = FaradayProductsOptions.from_config(faraday)
    if products.fdf_fits and not products.save_fdf:
        raise PlanError("config: faraday.fdf_fits exports the full FDF cubes, which only faraday.save_fdf keeps; "
                        "set save_fdf: true as well")
    if products.candidate_snr > config["catalogue"]["min_snr"]:
        raise PlanError(f"config: faraday.candidate_snr ({products.candidate_snr:g}) is above catalogue.min_snr "
                        f"({config['catalogue']['min_snr']:g}): catalogued sources would have no FDF spectrum "
                        "and no exact peak")
    if faraday["clean"] and faraday.get("clean_mask_sigma", 5.0) > config["catalogue"]["min_snr"]:
        raise PlanError(f"config: faraday.clean_mask_sigma ({faraday['clean_mask_sigma']:g}) is above "
                        f"catalogue.min_snr ({config['catalogue']['min_snr']:g}): catalogued sources would not be "
                        "RM-CLEANed")
    _check_primary_beam(config["catalogue"], observation, freqs)
    return Plan(
        work=config["work_dir"], results=config["results_dir"], inputs=observation.inputs, demo=observation.demo,
        cubes=observation.cubes,
        fingerprint=not observation.demo and observation.cubes is None and channels["fingerprint"],
        channels=observation.channels, width=channel_width(nchan), excluded=tuple(excluded), blocks=blocks,
        block_sources=sources, settings=settings, polarisation=polarisation, cube_fits=cube_fits,
        warnings=tuple(warnings),
        selection=SelectionOptions.from_config(config["input"]), split=SplitOptions.from_config(config["input"]),
        geometry=geometry,
        cube=cube, moments=MomentsOptions.from_config(config["moments"]),
        rm_synthesis=RMSynthesisOptions.from_config(faraday),
        rm_clean=RMCleanOptions.from_config(faraday) if faraday["clean"] else None,
        faraday_products=products, catalogue=CatalogueOptions.from_config(config["catalogue"]),
        qa=QAOptions.from_config(config["qa"]), dask=DaskOptions.from_config(config["dask"]),
        simulate=SimulateOptions.from_config(config["simulate"]), imaging_threads=config["imaging"]["threads"],
        channel_images=tuple(dict.fromkeys([cube.image, *config["imaging"].get("keep_images", [])])),
        input_bytes=observation.input_bytes,
    )
