"""Planning: what the workflow will do, as a pure function of the config and a small description
of the input, ``plan(config, observation) -> Plan``: the channels and their blocks (the unit of a
split or image job, and of a rerun), the settings of each channel, the options of every stage,
the product paths and the resources of every rule.

rules/common.smk binds the Plan to Snakemake and nothing else; ``observe(config, basedir)`` is the
one function here that touches the disk, and it reads only the small SPECTRAL_WINDOW,
DATA_DESCRIPTION and POLARIZATION subtables (never visibilities), so reading the workflow costs
milliseconds whatever the size of the MS. Channel fingerprints, which do read the data, are a job
of their own (rules/inspect.smk).

Channels are grouped into fixed blocks of ``block`` consecutive channels of the spectral window.
Blocks are cut from the full channel range, not from the channels left after exclusions, so that
excluding a channel changes only its own block.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from .constants import STOKES
from .errors import SpectropolError
from .kernels.moments import MOMENTS, QUANTITIES
from .options import (
    CatalogueOptions,
    ChannelSettings,
    CleanOptions,
    CubeOptions,
    DaskOptions,
    GeometryOptions,
    ImagingOptions,
    MomentsOptions,
    PeaksOptions,
    QAOptions,
    RMCleanOptions,
    RMSynthesisOptions,
    SelectionOptions,
    SimulateOptions,
)


class PlanError(SpectropolError):
    """The config asks for something the data cannot give; the message names the option."""


def parse_channel_ranges(items: Iterable[int | str], nchan: int, what: str = "channel list") -> list[int]:
    """Channel numbers from a list of integers and inclusive ranges "first-last", each inside 0..nchan-1."""
    chosen = set()
    for item in items:
        if isinstance(item, int):
            first = last = item
        else:
            first, _, last = str(item).partition("-")
            first, last = int(first), int(last or first)
        if not 0 <= first <= last < nchan:
            raise ValueError(f"{what}: {item!r} is not within channels 0..{nchan - 1}")
        chosen.update(range(first, last + 1))
    return sorted(chosen)


def block_label(first: int, last: int, width: int) -> str:
    return f"{first:0{width}d}" if first == last else f"{first:0{width}d}-{last:0{width}d}"


def channel_width(nchan: int) -> int:
    """Digits in channel names: five, more only beyond 99,999 channels."""
    return max(5, len(str(nchan - 1)))


def plan_blocks(nchan: int, block: int, exclude: Sequence[int] = ()) -> dict[str, list[int]]:
    """{label: channels} for every block that keeps at least one channel, in frequency order."""
    excluded = set(exclude)
    width = channel_width(nchan)
    blocks = {}
    for first in range(0, nchan, block):
        last = min(nchan, first + block) - 1
        kept = [c for c in range(first, last + 1) if c not in excluded]
        if kept:
            blocks[block_label(first, last, width)] = kept
    return blocks


def channel_settings(imaging: dict, clean: dict, overrides: Sequence[dict], nchan: int) -> list[dict]:
    """Per channel {"imaging": ..., "clean": ...} (config sections): the global settings with
    every override that names the channel applied in order (a later override wins)."""
    settings = [{"imaging": imaging, "clean": clean} for _ in range(nchan)]
    for k, override in enumerate(overrides):
        for channel in parse_channel_ranges(override["channels"], nchan, f"channels.overrides[{k}]"):
            merged = copy.deepcopy(settings[channel])
            merged["imaging"] = {**merged["imaging"], **override.get("imaging", {})}
            merged["clean"] = {**merged["clean"], **override.get("clean", {})}
            settings[channel] = merged
    return settings


@dataclasses.dataclass(frozen=True)
class Observation:
    """What planning needs to know of the input: its channel count and the Stokes parameters its
    correlations can form. ``ms`` is None for the demo, which a rule simulates."""

    ms: str | None
    nchan: int
    stokes: tuple[str, ...]


def observe(config: dict) -> Observation:
    """The Observation of the configured input, from the MS's small subtables (no visibilities
    read) or, for the demo, from the simulate section."""
    ms = config["input"]["ms"]
    if ms is None:
        return Observation(ms=None, nchan=config["simulate"]["nchan"], stokes=STOKES)
    from .io.ms import channel_frequencies, stokes_available

    spw = config["input"]["spw"]
    return Observation(ms=ms, nchan=len(channel_frequencies(ms, spw)), stokes=tuple(stokes_available(ms, spw)))


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
    ms: str | None                 # None: the demo MS, made by the simulate rule
    fingerprint: bool              # reruns follow the content of the MS (a fingerprint job), not file times
    nchan: int
    width: int                     # digits of channel names
    excluded: tuple[int, ...]
    blocks: dict[str, list[int]]   # {label: channels}, in frequency order
    settings: tuple[ChannelSettings, ...]  # per channel of the spectral window
    polarisation: bool             # Q and U can be formed: moments, Faraday stages and catalogue run
    warnings: tuple[str, ...]
    selection: SelectionOptions
    geometry: GeometryOptions
    cube: CubeOptions
    moments: MomentsOptions
    rm_synthesis: RMSynthesisOptions
    rm_clean: RMCleanOptions | None  # None: no RM-CLEAN, peaks from the dirty FDF
    peaks: PeaksOptions
    catalogue: CatalogueOptions
    qa: QAOptions
    dask: DaskOptions
    simulate: SimulateOptions
    imaging_threads: int

    # -- channels -------------------------------------------------------------------------------
    def channel_name(self, channel: int) -> str:
        return f"{channel:0{self.width}d}"

    def block_settings(self, block: str) -> list[ChannelSettings]:
        return [self.settings[c] for c in self.blocks[block]]

    def channel_image_stores(self) -> list[str]:
        """Every imaged channel's image store, in frequency order."""
        return [f"{self.results}/channels/{label}/{self.channel_name(c)}.zarr"
                for label, channels in self.blocks.items() for c in channels]

    # -- products -------------------------------------------------------------------------------
    def cube_fits(self) -> dict[str, str]:
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

    def moments_mem_mb(self, threads: int) -> int:
        """Dask holds about one tile per thread, with headroom for the scheduler and the output."""
        return int(500 + 3 * self.moments.chunk_mb * threads)

    def faraday_mem_mb(self, threads: int) -> int:
        """One tile per Dask worker, three times over for inputs, outputs and temporaries."""
        return int(600 + 3 * self.rm_synthesis.chunk_mb * threads)

    def faraday_fits_mem_mb(self) -> int:
        return int(600 + 2 * self.rm_synthesis.chunk_mb)

    def catalogue_mem_mb(self) -> int:
        return int(800 + 8 * self.geometry.size_px ** 2 * 4 / 1e6 * 4)

    def report_mem_mb(self) -> int:
        return int(1000 + 16 * self.geometry.size_px ** 2 * 4 / 1e6)

    def qa_mem_mb(self) -> int:
        return int(500 + 0.01 * self.nchan)

    def simulate_mem_mb(self) -> int:
        return int(500 + self.simulate.nchan * self.simulate.ntimes * 0.2)


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
    blocks = plan_blocks(nchan, channels["block"], excluded)
    if not blocks:
        raise PlanError(f"config: channels.exclude leaves none of the {nchan} channels to image")
    warnings = []
    polarisation = {"Q", "U"} <= set(observation.stokes)
    if not polarisation:
        warnings.append(f"{observation.ms}: correlations give Stokes {', '.join(observation.stokes)} only; "
                        "Faraday moments and RM synthesis need Q and U and are skipped")
    cube = CubeOptions.from_config(config["cube"])
    if config["clean"]["niter"] == 0:
        cube = dataclasses.replace(cube, image="dirty")  # restored images exist only when CLEAN runs
    faraday = config["faraday"]
    return Plan(
        work=config["work_dir"], results=config["results_dir"], ms=observation.ms,
        fingerprint=observation.ms is not None and channels["fingerprint"],
        nchan=nchan, width=channel_width(nchan), excluded=tuple(excluded), blocks=blocks, settings=settings,
        polarisation=polarisation, warnings=tuple(warnings),
        selection=SelectionOptions.from_config(config["input"]),
        geometry=GeometryOptions.from_config(config["imaging"]),
        cube=cube, moments=MomentsOptions.from_config(config["moments"]),
        rm_synthesis=RMSynthesisOptions.from_config(faraday),
        rm_clean=RMCleanOptions.from_config(faraday) if faraday["clean"] else None,
        peaks=PeaksOptions.from_config(faraday), catalogue=CatalogueOptions.from_config(config["catalogue"]),
        qa=QAOptions.from_config(config["qa"]), dask=DaskOptions.from_config(config["dask"]),
        simulate=SimulateOptions.from_config(config["simulate"]), imaging_threads=config["imaging"]["threads"],
    )
