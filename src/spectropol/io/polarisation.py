"""Stokes planes for the one-pass Faraday stage (Q and U, and I for the moments), read a region of
the sky at a time: from a cube store (the workflow's own, or one made by cube_from_fits), or straight
from FITS cubes or channel images made elsewhere (as RM-Tools' rmsynth3d reads them), so that RM
synthesis of existing images needs no copy of them first."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence

import numpy as np

from ..errors import fail
from ..kernels.statistics import sampled_mad_rms


@dataclasses.dataclass
class StokesSource:
    """What the one-pass Faraday stage needs of its input, and readers of its regions."""

    name: str                       # the input, as messages and provenance name it
    freqs_hz: np.ndarray            # (nchan,) increasing
    rms: dict[str, np.ndarray]      # Stokes -> (nchan,) robust rms of each plane (NaN: no data)
    wcs: dict                       # celestial FITS keywords
    shape: tuple[int, int]          # (ny, nx)
    chunk: int | None               # side of the stored spatial chunks (regions are read in whole chunks)
    beam_px: float                  # median restoring beam major axis in pixels (NaN where not known)
    stokes: tuple[str, ...]         # the Stokes parameters present (Q and U always)
    regions: Callable[[tuple[str, ...]], Callable[[slice, slice], list[np.ndarray]]]
    # regions(stokes) -> read(ys, xs) -> one (nchan, ny, nx) float32 array per Stokes asked for (of
    # either byte order: a FITS cube's is a view of its memory map, read when it is copied)


class _CubeRegions:
    """Regions of a cube store's Stokes planes, read chunk file by chunk file (io.chunks): each stored chunk is
    decompressed and cut in turn, where Dask's getitem would hold every chunk of the column whole
    before cutting (four times the region when it is half a stored chunk across). Picklable (a path
    and indices), so a distributed worker reads its own."""

    def __init__(self, cube_store: str, image: str, stokes_index: list[int]):
        self.cube_store, self.image, self.stokes_index = cube_store, image, stokes_index

    def __call__(self, ys: slice, xs: slice) -> list[np.ndarray]:
        from .chunks import ChunkFiles

        array = ChunkFiles.open(f"{self.cube_store}/{self.image}")
        return [np.asarray(array[:, k, ys, xs], dtype=np.float32) for k in self.stokes_index]


class _FitsRegions:
    """Regions of FITS planes, each file opened once as a memory map (reopened after pickling, for
    a distributed worker)."""

    def __init__(self, planes: dict[str, list]):
        self.planes = planes  # Stokes -> FitsPlane list in frequency order
        self._open: dict[str, object] = {}
        self._runs: dict[str, list] = {}

    def __getstate__(self) -> dict:
        return {"planes": self.planes}

    def __setstate__(self, state: dict) -> None:
        self.planes, self._open, self._runs = state["planes"], {}, {}

    def data(self, path: str):
        data = self._open.get(path)
        if data is None:
            from astropy.io import fits

            data = self._open[path] = fits.open(path, memmap=True)[0].data
        return data

    def plane(self, stokes: str, channel: int) -> np.ndarray:
        plane = self.planes[stokes][channel]
        return self.data(plane.path)[plane.index]

    def runs(self, stokes: str) -> list[tuple[str, tuple, int]]:
        """The planes of ``stokes`` as runs of consecutive planes of one file: (path, numpy index of
        the run, its channel axis a slice, planes), so that a FITS cube's region is read in one slice
        of its memory map, not a plane at a time (64 planes of 512^2: 0.3 -> 0.1 s of CPU a pass)."""
        runs: list[list] = []  # path, first plane's index, the axis the run goes along, planes
        for plane in self.planes[stokes]:
            if runs and runs[-1][0] == plane.path:
                path, first, axis, count = runs[-1]
                differ = [k for k, (a, b) in enumerate(zip(first, plane.index)) if a != b]
                if (len(differ) == 1 and axis in (None, differ[0])
                        and plane.index[differ[0]] == first[differ[0]] + count):
                    runs[-1] = [path, first, differ[0], count + 1]
                    continue
            runs.append([plane.path, tuple(plane.index), None, 1])
        return [(path, first if axis is None else first[:axis] + (slice(first[axis], first[axis] + count),)
                 + first[axis + 1:], count) for path, first, axis, count in runs]

    def __call__(self, ys: slice, xs: slice) -> list[np.ndarray]:
        """Each Stokes' (nchan, ny, nx) region: where its planes are one run of one cube, a view of
        the file's memory map (big-endian, as FITS stores it), which the Faraday pass copies a tile
        at a time into buffers of its own, byte order converted in the same copy; else a float32
        array of the planes read (a WSClean image per channel, planes in another order)."""
        out = []
        for stokes in self.planes:
            if stokes not in self._runs:  # worked out once, not for every region
                self._runs[stokes] = self.runs(stokes)
            runs = self._runs[stokes]
            if len(runs) == 1 and runs[0][2] > 1:
                path, index, _ = runs[0]
                out.append(self.data(path)[index[:-2] + (ys, xs)])
                continue
            first = self.plane(stokes, 0)[ys, xs]
            region = np.empty((len(self.planes[stokes]),) + first.shape, np.float32)
            channel = 0
            for path, index, count in runs:
                data = self.data(path)
                if count == 1:
                    region[channel] = data[index][ys, xs]
                else:
                    region[channel:channel + count] = data[index[:-2] + (ys, xs)]
                channel += count
            out.append(region)
        return out


def stokes_from_cube(cube_store: str | os.PathLike) -> StokesSource:
    """The Stokes planes of a cube store (refused, in one line, if it holds no Q and U). Read with
    zarr alone: through xarray, whose indexing imports dask.array, opening a 256-channel cube took
    1.5 s of a 13 s Faraday job, 0.05 s this way."""
    from .cube import require_linear_polarisation
    from .stores import open_store, select

    cube = open_store(cube_store, "cube")
    require_linear_polarisation(cube, cube_store)
    labels = [str(s) for s in cube["stokes"][...]]
    present = tuple(s for s in ("I", "Q", "U") if s in cube.attrs.get("stokes_present", labels))
    wcs = dict(cube.attrs["wcs"])
    cell = abs(float(wcs["CDELT2"]))
    bmaj = np.asarray(cube["bmaj"][...], dtype=np.float64) if "bmaj" in cube else np.array([np.nan])
    beam_px = float(np.nanmedian(bmaj)) / cell if np.isfinite(bmaj).any() else float("nan")
    rms = {s: select(cube, "rms", stokes=s) for s in present}
    store, image = str(cube_store), cube.attrs["image"]
    array = cube[image]
    return StokesSource(name=store, freqs_hz=np.asarray(cube["freq"][...]), rms=rms, wcs=wcs,
                        shape=tuple(array.shape[-2:]), chunk=int(array.chunks[-1]), beam_px=beam_px, stokes=present,
                        regions=lambda stokes: _CubeRegions(store, image, [labels.index(s) for s in stokes]))


def stokes_from_fits(q_paths: Sequence[str | os.PathLike], u_paths: Sequence[str | os.PathLike],
                     i_paths: Sequence[str | os.PathLike] = (), *, freqs_file: str | os.PathLike | None = None,
                     threads: int = 1) -> StokesSource:
    """Q, U and (optionally) I of FITS files: a cube with a FREQ axis each, or one image per channel
    (WSClean's -channel-NNNN- images), frequencies from the headers or ``freqs_file`` (RM-Tools'
    format), as cube_from_fits reads them; each plane's rms is the robust rms the cube stage records,
    from a regular sample of 2^16 pixels or more (sampled_mad_rms; ``threads`` planes at a time: the
    medians release the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    from .fits_cubes import collect_stokes, read_frequency_file

    freqs_given = read_frequency_file(freqs_file) if freqs_file else None
    given = {s: paths for s, paths in (("I", i_paths), ("Q", q_paths), ("U", u_paths)) if paths}
    collected = {s: collect_stokes([str(p) for p in paths], s, freqs_given) for s, paths in given.items()}
    q = collected["Q"]
    for s, planes in collected.items():
        if planes.shape != q.shape:
            raise fail(planes.files[0], f"Stokes {s} images are {planes.shape[1]}x{planes.shape[0]} pixels, "
                                        f"Stokes Q's {q.shape[1]}x{q.shape[0]}")
        if len(planes.planes) != len(q.planes) or not np.allclose(planes.freqs_hz, q.freqs_hz, rtol=1e-9, atol=0):
            raise fail(planes.files[0], f"Stokes {s} has {len(planes.planes)} planes at other frequencies than "
                                        f"Stokes Q's {len(q.planes)}")
    every = _FitsRegions({s: list(planes.planes) for s, planes in collected.items()})
    with ThreadPoolExecutor(max(1, threads)) as pool:
        rms = {s: np.array(list(pool.map(lambda c, s=s: sampled_mad_rms(every.plane(s, c)),
                                         range(len(q.planes)))), dtype=np.float32) for s in collected}
    cell = abs(float(q.wcs["CDELT2"]))
    beams = np.array([p.beam_deg[0] for p in q.planes], dtype=np.float64)
    beam_px = float(np.nanmedian(beams)) / cell if np.isfinite(beams).any() else float("nan")
    name = q.files[0] if len(q.files) == 1 else f"{len(q.files)} FITS files, first {q.files[0]}"
    return StokesSource(name=name, freqs_hz=q.freqs_hz, rms=rms, wcs=q.wcs, shape=q.shape, chunk=None,
                        beam_px=beam_px, stokes=tuple(collected),
                        regions=lambda stokes: _FitsRegions({s: list(collected[s].planes) for s in stokes}))
