"""Writing products so that a job killed half-way leaves nothing that looks complete.

Every Zarr store, FITS file and JSON document is written under a temporary name beside its final
path and renamed into place when complete; Zarr stores carry provenance in their attributes.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import fail
from ..identity import RUN_IDENTITY


def provenance(inputs: dict[str, str] | None = None, config_hash: str | None = None) -> dict:
    """Who made a product, when, and from what: software version, the run's identity (workflow
    commit, configuration and sheet digests, field), host, time, inputs."""
    return {
        "software": "spectropol",
        "software_version": __version__,
        **{k: v for k, v in RUN_IDENTITY.items() if k != "software_version"},
        "created_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "inputs": {k: str(v) for k, v in (inputs or {}).items()},
        "config_hash": config_hash or "",
        # Unique per product written: lets a later stage tell whether an input is the one it used.
        "product_id": uuid.uuid4().hex,
    }


# the packages whose versions decide a product, as the report's Provenance page lists them
PROVENANCE_PACKAGES = ("spectropol", "snakemake", "numpy", "scipy", "astropy", "python-casacore", "ducc0", "dask",
                       "zarr", "xarray", "numba", "everybeam", "katbeam", "matplotlib", "confluent-kafka")


def software_versions(packages=PROVENANCE_PACKAGES) -> dict[str, str]:
    """Installed versions (package metadata: nothing is imported), 'not installed' for the absent."""
    from importlib import metadata

    versions = {}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def config_sha256(config: dict) -> str:
    """The digest of a configuration: JSON with sorted keys, so that equal settings give equal digests."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


@lru_cache(maxsize=8)
def workflow_commit(workflow_dir: str) -> str:
    """The git commit of the workflow's checkout, '-dirty' appended where tracked files differ from
    it; 'unknown' outside a git checkout or without git."""
    def git(*args):
        return subprocess.run(["git", "-C", str(workflow_dir), *args], capture_output=True, text=True, timeout=30)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return "unknown"
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head.stdout.strip() + ("-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")


def content_digest(arrays: dict[str, np.ndarray], attrs: dict | None = None) -> str:
    """A digest of numeric arrays (names, dtypes, shapes, bytes) and of JSON-able attributes: equal digests
    mean equal content, whenever and wherever the product was made."""
    digest = hashlib.blake2b(digest_size=16)
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.data)
    digest.update(json.dumps(attrs or {}, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def config_hash(params: dict) -> str:
    """A short stable hash of the parameters that shaped a product (JSON with sorted keys)."""
    text = json.dumps(params, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling path; on success rename it to ``path``, on failure remove it."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = final.with_name(f".{final.name}.partial-{os.getpid()}")
    remove_path(partial)
    try:
        yield partial
    except BaseException:
        remove_path(partial)
        raise
    remove_path(final)
    os.replace(partial, final)


def remove_path(path: Path) -> None:
    """Remove a file, link or directory tree, if there is one."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None  # JSON has no NaN; null says "not measured"
    return value


def write_json(path: str | os.PathLike, document: dict) -> None:
    """Write a JSON document atomically (NaN and infinity become null)."""
    with atomic_path(path) as partial:
        partial.write_text(json.dumps(_jsonable(document), indent=2, sort_keys=False) + "\n")


@contextlib.contextmanager
def quiet_zarr_v3() -> Iterator[None]:
    """Silence zarr's notes that fixed-length strings (our Stokes labels) and consolidated metadata
    are not yet in the v3 specification: both are read back by zarr-python and xarray, which is
    what our stores promise."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have a Zarr V3 specification.*")
        warnings.filterwarnings("ignore", message=".*Consolidated metadata is currently not part.*")
        yield


UPDATING = ".updating"  # a file in a store being updated in place; its presence means "do not read"


def store_of(metadata: str | os.PathLike) -> str:
    """The Zarr store whose root metadata file (zarr.json) this is: the workflow declares stores
    updated in place by that file (see CUBE_METADATA in rules/common.smk)."""
    path = Path(metadata)
    if path.name != "zarr.json":
        raise ValueError(f"{path}: not the zarr.json of a store")
    return str(path.parent)


@contextlib.contextmanager
def updating(store: str | os.PathLike) -> Iterator[None]:
    """Mark ``store`` as being updated in place for the block: an update cut short leaves the mark,
    and open_dataset refuses the store until an update completes."""
    mark = Path(store) / UPDATING
    mark.write_text("an update of this store was started and has not completed\n")
    yield
    mark.unlink()


CODEC_BATCH_BYTES = 2 << 20  # chunk bytes zarr decodes (and encodes) together, at most 32 chunks
DECODE_MB = 100  # what zarr holds while it decodes such batches, measured (see batch_codecs)
READ_CONCURRENCY = 4  # batches zarr reads and decodes at once (its default is 10), see batch_codecs


def batch_codecs(chunk_bytes: int, concurrency: int = READ_CONCURRENCY) -> int:
    """Have zarr run its codecs on batches of chunks (about 2 MB, at most 32 chunks) instead of one
    at a time, and return the batch. Reading the Q, U and I of a 256-channel 512^2 cube in 64 kB
    chunks took 5.1 s one at a time, 2.9 s in batches of 32 (zarr 3.1.6; larger batches were
    slower). What zarr holds while decoding grows with the batch: at 1,024 channels in 256 kB chunks
    the one pass peaked at 575 MB one at a time, 700 MB in batches of 8 and 964 MB of 32, about 48
    batches' worth; DECODE_MB covers 2 MB batches. Those batches are also read READ_CONCURRENCY at a
    time, not zarr's 10: the pass over a 512^2 cube in 256 kB chunks then peaked at 501, 567 and 544 MB
    at 64, 256 and 1,024 channels instead of 509, 615 and 674 MB, in 2.2, 6.3 and 61 s instead of 2.3,
    6.3 and 58 s (one at a time: 503, 555, 536 MB in 2.3, 7.1, 70 s). Two became four when the rerun
    benchmark's pass (256 channels of 512^2 in 64 kB chunks, RM-CLEAN and moments) took 7.8 s at
    four, 8.5-9.0 s at two and 7.3 s at ten, peaking at 600, 597 and 630 MB. A setting of the process: stages
    that read whole cubes call it first; ``concurrency`` higher where what is read is small (the
    catalogue's cut-outs: zarr's 10)."""
    import zarr

    batch = int(max(1, min(32, CODEC_BATCH_BYTES // max(1, chunk_bytes))))
    settings = {"codec_pipeline.batch_size": batch, "async.concurrency": concurrency}
    if any(zarr.config.get(key) != value for key, value in settings.items()):
        zarr.config.set(settings)
    return batch


def write_store(path: str | os.PathLike, variables: dict, attrs: dict, chunks: dict | None = None,
                raw: tuple[str, ...] = (), shards: dict | None = None) -> None:
    """Write a small labelled Zarr v3 store with zarr alone (no xarray, pandas or dask to import,
    which is most of a short per-channel job's start-up time). ``variables`` maps a name to
    (dimension names, array, attributes); a variable named like its dimension is that dimension's
    coordinate, as xarray.open_zarr reads it. Variables named in ``raw`` are stored uncompressed:
    visibilities, UVW and images are noise-like floats that compress by a few per cent, for the
    CPU time of a second gridding pass. A variable with ``shards`` keeps its chunks in one file per
    shard (Zarr v3 sharding)."""
    import zarr

    chunks, shards = chunks or {}, shards or {}
    with atomic_path(path) as partial, quiet_zarr_v3():
        group = zarr.open_group(partial, mode="w", zarr_format=3, attributes=_jsonable(attrs))
        for name, (dims, data, var_attrs) in variables.items():
            data = np.asarray(data)
            extra = {"compressors": None} if name in raw else {}
            if name in shards:
                extra["shards"] = shards[name]
            array = group.create_array(name, shape=data.shape, dtype=data.dtype,
                                       chunks=chunks.get(name, data.shape or None),
                                       dimension_names=tuple(dims), attributes=_jsonable(var_attrs or {}), **extra)
            if data.size:
                array[...] = data
        zarr.consolidate_metadata(partial, zarr_format=3)


class StoreBuilder:
    """A labelled Zarr v3 store filled piece by piece (regions of fixed-shape arrays, rows appended
    to growing ones) by a stage that never holds a whole product in memory; see build_store."""

    def __init__(self, group):
        self.group = group

    def array(self, name: str, dims: tuple[str, ...], shape: tuple[int, ...], dtype, *, chunks=None, shards=None,
              attrs: dict | None = None, data: np.ndarray | None = None, raw: bool = False):
        """Create ``name`` (NaN-filled for floats until written); ``data`` writes it whole. With
        ``shards``, chunks are grouped into one file per shard (Zarr v3 sharding)."""
        dtype = np.dtype(dtype)
        fill = np.nan if dtype.kind in "fc" else 0
        extra = ({"compressors": None} if raw else {}) | ({"shards": shards} if shards else {})
        array = self.group.create_array(name, shape=shape, dtype=dtype, chunks=chunks or (shape or None),
                                        dimension_names=tuple(dims), attributes=_jsonable(attrs or {}),
                                        fill_value=fill, **extra)
        if data is not None and np.asarray(data).size:
            array[...] = data
        return array


@contextlib.contextmanager
def build_store(path: str | os.PathLike, attrs: dict) -> Iterator[StoreBuilder]:
    """A store written under a temporary name, its metadata consolidated and the store renamed into
    place when the block ends without error (so xarray.open_zarr reads it as write_dataset's)."""
    import zarr

    with atomic_path(path) as partial, quiet_zarr_v3():
        builder = StoreBuilder(zarr.open_group(partial, mode="w", zarr_format=3, attributes=_jsonable(attrs)))
        yield builder
        zarr.consolidate_metadata(partial, zarr_format=3)


def store_bytes(path: str | os.PathLike) -> int:
    """Bytes a product takes on disk (every file under a store, or the file)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def read_store(path: str | os.PathLike, names: tuple[str, ...] | None = None) -> tuple[dict, dict]:
    """Arrays (all, or ``names``) and attributes of a store written by write_store."""
    import zarr

    with quiet_zarr_v3():
        group = zarr.open_group(path, mode="r", zarr_format=3)
        arrays = {name: group[name][...] for name in (names or tuple(group.array_keys()))}
        return arrays, dict(group.attrs)


def open_store(path: str | os.PathLike, what: str):
    """A product store as a read-only zarr group (arrays read when indexed, by name), with
    open_dataset's checks: for the small readers (the report) that need neither labels nor the
    0.3 s that importing xarray and pandas costs a job."""
    import zarr

    try:
        with quiet_zarr_v3():
            group = zarr.open_group(str(path), mode="r", zarr_format=3)
    except (FileNotFoundError, KeyError, ValueError) as err:
        raise fail(path, f"not a spectropol {what} store ({err})") from None
    if group.attrs.get("complete") is False or (Path(path) / UPDATING).exists():
        raise fail(path, f"{what} store is incomplete: an update of it was interrupted; rerun its rule")
    return group


def select(group, name: str, **where) -> np.ndarray:
    """Array ``name`` of a store opened with open_store, with the coordinates named in ``where``
    picked by label (a value, or a list of values), as xarray's sel would, on zarr alone."""
    array = group[name]
    index = []
    for dim in array.metadata.dimension_names:
        if dim not in where:
            index.append(slice(None))
            continue
        labels = [str(v) for v in group[dim][...]]
        wanted = where[dim]
        index.append([labels.index(str(v)) for v in wanted] if isinstance(wanted, list | tuple)
                     else labels.index(str(wanted)))
    return np.asarray(array.oindex[tuple(index)])


def open_dataset(path: str | os.PathLike, what: str, *, dask: bool = True):
    """A product store as a lazy labelled xarray Dataset; a one-line error naming ``what`` it should
    have been (e.g. 'cube') if it cannot be opened. With ``dask`` False its variables are lazily
    indexed arrays, read when indexed, without a Dask graph: what a stage that takes maps and
    pixels (not tiles) wants, without Dask's start-up and scheduler per read."""
    import xarray as xr

    try:
        with quiet_zarr_v3():
            dataset = xr.open_zarr(path, zarr_format=3, consolidated=True, **({} if dask else {"chunks": None}))
    except (FileNotFoundError, KeyError, ValueError) as err:
        raise fail(path, f"not a spectropol {what} store ({err})") from None
    if dataset.attrs.get("complete") is False or (Path(path) / UPDATING).exists():
        raise fail(path, f"{what} store is incomplete: an update of it was interrupted; rerun its rule")
    return dataset


def write_dataset(dataset, path: str | os.PathLike, encoding: dict | None = None) -> None:
    """Write an xarray Dataset (dask-backed or not) as a consolidated Zarr v3 store, atomically.
    Dask computes it with whatever scheduler is active (see stages.tiling.dask_scheduler)."""
    with atomic_path(path) as partial, quiet_zarr_v3():
        dataset.to_zarr(partial, mode="w", zarr_format=3, consolidated=True, encoding=encoding or {})
