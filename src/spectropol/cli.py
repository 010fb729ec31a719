"""Command line: every stage of the workflow over plain files, so that one can be run and debugged
without Snakemake (scripts/ and these commands call the same stage functions), and the QA tools.

    spectropol simulate OUT.ms                       spectropol moments CUBE OUT QA
    spectropol inspect MS... [--out selection.json]  spectropol moments-fits MOMENTS DIR
    spectropol fingerprint MS RECORD --spw N         spectropol faraday-depth DIR QA --cube CUBE|--q..
    spectropol split SELECTION MS CHANNELS VIS QA    spectropol faraday-fits PEAKS DIR [--dirty D --clean C]
    spectropol image SELECTION VIS CHANNELS IMG QA   spectropol catalogue CUBE MOMENTS PEAKS DIR QA
    spectropol cube SELECTION OUT QA STORE...        spectropol report MOMENTS PEAKS CANDIDATES CAT DIR
    spectropol cube-fits CUBE DIR                    spectropol primary-beam CUBE OUT --model M [--ms MS...]
    spectropol cube-from-fits CUBE QA --q FITS... --u FITS... [--i FITS...] [--freqs FILE]
    spectropol faraday DIR (--cube CUBE | --q FITS... --u FITS... [--i FITS...] [--freqs FILE])
    spectropol qa summary|flush|aggregate ...

Stage options are the config's, with the same defaults (taken from spectropol.options, which a
test holds equal to the schema). Errors a user can fix are printed as one line, with exit status 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import typing
from pathlib import Path

from . import options as opts
from .errors import SpectropolError

RULE = "spectropol cli"  # what the QA documents of command-line runs name as their producer


# -- options from dataclasses ---------------------------------------------------------------------


def _argument_type(cls, field: dataclasses.Field):
    hint = typing.get_type_hints(cls)[field.name]
    args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    return args[0]


def add_options(parser: argparse.ArgumentParser, cls, *, skip: tuple[str, ...] = ()) -> None:
    """An --option for every field of the options dataclass ``cls``, with its type and default."""
    group = parser.add_argument_group(cls.__name__, (cls.__doc__ or "").strip().splitlines()[0])
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        flag = "--" + field.name.replace("_", "-")
        kind = _argument_type(cls, field)
        if kind is bool:
            group.add_argument(flag, dest=f"{cls.__name__}.{field.name}", action=argparse.BooleanOptionalAction,
                               default=field.default)
        else:
            group.add_argument(flag, dest=f"{cls.__name__}.{field.name}", type=kind, default=field.default,
                               help=f"default {field.default}")


def options_from(args: argparse.Namespace, cls):
    """The options instance of ``cls`` from the parsed arguments add_options declared."""
    prefix = f"{cls.__name__}."
    values = {k[len(prefix):]: v for k, v in vars(args).items() if k.startswith(prefix)}
    return cls(**values)


def _channels(text: str) -> list[int]:
    """'0-3,7' -> [0, 1, 2, 3, 7]"""
    from .planning import parse_channel_ranges

    items = [int(t) if t.isdigit() else t for t in text.split(",") if t]
    return parse_channel_ranges(items, 1 << 30, "channels")


# -- commands -------------------------------------------------------------------------------------


def _simulate(args) -> None:
    from .stages.simulate import simulate

    summary = simulate(args.ms, args.skymodel, args.layout, options_from(args, opts.SimulateOptions))
    print(json.dumps({k: v for k, v in summary.items() if k != "sources"}))


def _inspect(args) -> None:
    from .io.ms import select_data
    from .stages.inspect import inspect_ms

    selection_options = options_from(args, opts.SelectionOptions)
    if args.out:
        inspection = inspect_ms([(ms, [args.spw]) for ms in args.ms], args.out, selection_options,
                                options_from(args, opts.GeometryOptions))
        selections = list(inspection.selections.values())
    else:
        selections = [select_data(ms, column=selection_options.column, spw=args.spw, field=selection_options.field,
                                  time_range_utc=selection_options.time_range_utc) for ms in args.ms]
    summaries = []
    for selection in selections:
        summary = selection.to_dict()
        summary["freqs_hz"] = [summary["freqs_hz"][0], summary["freqs_hz"][-1], len(summary["freqs_hz"])]
        summaries.append(summary)
    print(json.dumps(summaries[0] if len(summaries) == 1 else summaries, indent=2))


def _fingerprint(args) -> None:
    from .stages.inspect import fingerprint_ms

    fingerprints = fingerprint_ms(args.ms, args.record, [args.spw], options_from(args, opts.SelectionOptions))
    print(json.dumps({"layout": fingerprints.layout, "channels": sum(len(c) for c in fingerprints.channels.values()),
                      "flagged_everywhere": fingerprints.flagged_everywhere()}))


def _split(args) -> None:
    from .planning import channel_width
    from .stages.inspect import read_inspection
    from .stages.split import split_block

    selection = read_inspection(args.selection).selection(args.ms_index, args.spw)
    channels = _channels(args.channels)
    results = split_block(args.selection, args.ms, args.ms_index, args.spw, channels, channels, args.vis_dir,
                          args.qa_dir, width=channel_width(len(selection.freqs)),
                          options=options_from(args, opts.SplitOptions), ionosphere_rm=args.ionosphere_rm, rule=RULE)
    print(json.dumps([{"channel": r.channel, "rows_kept": r.rows_kept} for r in results]))


def _image(args) -> None:
    from .planning import channel_width
    from .stages.image import image_block
    from .stages.inspect import read_inspection

    nchan = sum(len(s.freqs) for s in read_inspection(args.selection).selections.values())
    channels = _channels(args.channels)
    settings = opts.ChannelSettings(options_from(args, opts.ImagingOptions), options_from(args, opts.CleanOptions))
    results = image_block(args.selection, args.vis_dir, channels, [settings] * len(channels), args.image_dir,
                          args.qa_dir,
                          width=channel_width(nchan), nthreads=args.threads, rule=RULE)
    # a channel whose images were already made from the same visibilities and settings is kept
    print(json.dumps([{"channel": c, "kept": True} if r is None else
                      {"channel": r.channel, "peak_i": r.stokes["I"]["peak"], "beam": r.beam}
                      for c, r in zip(channels, results)]))


def _cube(args) -> None:
    from .stages.cube import gather_cube
    from .stages.inspect import read_inspection

    inspection = read_inspection(args.selection)
    freqs = sorted(f for s in inspection.selections.values() for f in s.freqs)
    result = gather_cube(args.stores, args.cube, args.qa, options_from(args, opts.CubeOptions),
                         spectral_window=freqs if args.all_channels else None, update=args.update, rule=RULE)
    print(json.dumps(dataclasses.asdict(result)))


def _cube_fits(args) -> None:
    from .constants import STOKES
    from .stages.cube import export_cube_fits

    export_cube_fits(args.cube, {s: Path(args.out_dir) / f"cube_{s}.fits" for s in STOKES})


def _fits_inputs(args) -> dict[str, list[str]]:
    return {s: getattr(args, s.lower()) for s in "IQUV" if getattr(args, s.lower())}


def _cube_from_fits(args) -> None:
    from .stages.cube import cube_from_fits

    result = cube_from_fits(_fits_inputs(args), args.cube, args.qa, freqs_file=args.freqs, chunk_px=args.chunk_px,
                            shard=args.shard, rule=RULE)
    print(json.dumps(dataclasses.asdict(result)))


def _faraday_stores(out: Path, products: opts.FaradayProductsOptions, clean: bool) -> dict[str, Path]:
    from .stages.faraday import FARADAY_STORES, faraday_store_names

    return {name: out / FARADAY_STORES[name] for name in faraday_store_names(products, clean)}


def _faraday(args) -> None:
    """The Faraday half and the catalogue on a cube store, or on FITS images made elsewhere."""
    from .stages.catalogue import CATALOGUE_FILES, build_catalogue
    from .stages.cube import cube_from_fits
    from .stages.faraday import faraday_depth

    out = Path(args.out_dir)
    (out / "qa").mkdir(parents=True, exist_ok=True)
    fits_inputs = _fits_inputs(args)
    if bool(args.cube) == bool(fits_inputs):
        raise SpectropolError("spectropol faraday: give either --cube (a cube store) or --q and --u FITS images")
    cube = Path(args.cube) if args.cube else out / "cube.zarr"
    if fits_inputs:
        cube_from_fits(fits_inputs, cube, out / "qa/cube.json", freqs_file=args.freqs, rule=RULE)
    dask = options_from(args, opts.DaskOptions)
    synthesis = options_from(args, opts.RMSynthesisOptions)
    products = options_from(args, opts.FaradayProductsOptions)
    clean = options_from(args, opts.RMCleanOptions) if args.clean else None
    faraday_depth(cube, _faraday_stores(out, products, clean is not None), out / "qa/faraday_depth.json", synthesis,
                  clean, products, dask, moments=opts.MomentsOptions(weighting=args.moments_weighting),
                  moments_out=out / "moments.zarr", moments_qa=out / "qa/moments.json", rule=RULE)
    catalogue = options_from(args, opts.CatalogueOptions)
    if catalogue.primary_beam in ("everybeam", "katbeam") and not catalogue.primary_beam_fits:
        from .stages.primary_beam import primary_beam_of_cube

        beam = primary_beam_of_cube(cube, catalogue.primary_beam, args.ms or [], out / "primary_beam.fits")
        catalogue = dataclasses.replace(catalogue, primary_beam_fits=str(beam))
    result = build_catalogue(cube, out / "moments.zarr", out / "peaks.zarr",
                             {kind: out / name for kind, name in CATALOGUE_FILES.items()}, out / "qa/catalogue.json",
                             catalogue, rule=RULE)
    print(json.dumps({"out_dir": str(out), "sources": result.sources, "islands": result.islands}))


def _primary_beam(args) -> None:
    from .stages.primary_beam import primary_beam_of_cube

    print(primary_beam_of_cube(args.cube, args.model, args.ms or [], args.out))


def _moments(args) -> None:
    from .stages.moments import faraday_moments

    result = faraday_moments(args.cube, args.out, args.qa, options_from(args, opts.MomentsOptions),
                             options_from(args, opts.DaskOptions), chunk_mb=args.chunk_mb, rule=RULE)
    print(json.dumps({"channels": result.channels, "weighting": result.weighting}))


def _moments_fits(args) -> None:
    from .stages.moments import MOMENT_MAPS, export_moment_fits

    export_moment_fits(args.moments, {(q, m): Path(args.out_dir) / f"{q}_{m}.fits" for q, m in MOMENT_MAPS})


def _faraday_depth(args) -> None:
    from . import without_huge_page_advice

    without_huge_page_advice()  # before NumPy is imported
    from .io.polarisation import stokes_from_fits
    from .stages.faraday import faraday_depth

    if bool(args.cube) == bool(args.q or args.u):
        raise SpectropolError("spectropol faraday-depth: give either --cube (a cube store) or --q and --u FITS images")
    if not args.cube and not (args.q and args.u):
        raise SpectropolError("spectropol faraday-depth: FITS input needs both --q and --u")
    if args.clean:
        from .kernels.faraday_loops import warm_up

        warm_up("hogbom_rows")  # while the FITS headers are read and the planes' rms computed
    dask = options_from(args, opts.DaskOptions)
    source = args.cube or stokes_from_fits(args.q, args.u, freqs_file=args.freqs, threads=dask.threads)
    products = options_from(args, opts.FaradayProductsOptions)
    clean = options_from(args, opts.RMCleanOptions) if args.clean else None
    result = faraday_depth(source, _faraday_stores(Path(args.out_dir), products, clean is not None), args.qa,
                           options_from(args, opts.RMSynthesisOptions), clean, products, dask, rule=RULE)
    print(json.dumps({"candidates": result.candidates, "fdf_noise_median": result.fdf_noise_median,
                      "bytes": result.bytes}))


def _faraday_fits(args) -> None:
    import zarr

    from .stages.faraday import export_faraday_fits, fits_product_names

    kinds = [kind for kind, store in (("dirty", args.dirty), ("clean", args.clean)) if store]
    names = fits_product_names(kinds, "stokes_i_model" in zarr.open_group(str(args.peaks), mode="r"))
    export_faraday_fits(args.peaks, {name: Path(args.out_dir) / f"{name}.fits" for name in names},
                        dirty_store=args.dirty, clean_store=args.clean)


def _catalogue(args) -> None:
    from .stages.catalogue import CATALOGUE_FILES, build_catalogue

    result = build_catalogue(args.cube, args.moments, args.peaks,
                             {kind: Path(args.out_dir) / name for kind, name in CATALOGUE_FILES.items()}, args.qa,
                             options_from(args, opts.CatalogueOptions), rule=RULE)
    print(json.dumps(dataclasses.asdict(result)))


def _report(args) -> None:
    from .stages.report import field_figures, source_figures

    out = Path(args.out_dir)
    field_figures(args.moments, args.peaks,
                  {"moments": out / "moments.png", "peak_rm": out / "peak_rm.png", "rmsf": out / "rmsf.png"},
                  cube_store=args.cube)
    source_figures(args.moments, args.peaks, args.candidates, args.catalogue,
                   {"maps": out / "maps.png", "spectra": out / "fdf_spectra.png"}, brightest=args.brightest,
                   cube_store=args.cube, spectra_path=args.spectra)


def _qa_summary(args) -> None:
    from .stages.qa import qa_summary

    summary = qa_summary(args.documents, args.summary, args.plot, options_from(args, opts.QAOptions))
    print(json.dumps({"channels": summary["channels"], "outliers": len(summary["outliers"])}))


def _kafka_arguments(parser) -> None:
    parser.add_argument("--bootstrap-servers", help="Kafka bootstrap servers host:port[,host:port]")
    parser.add_argument("--topic", default="spectropol-qa")
    parser.add_argument("--security-protocol", default="PLAINTEXT", choices=("PLAINTEXT", "SSL", "SASL_PLAINTEXT",
                                                                             "SASL_SSL"))
    parser.add_argument("--sasl-mechanism",
                        help="credentials from SPECTROPOL_KAFKA_USERNAME and SPECTROPOL_KAFKA_PASSWORD")


def _qa_flush(args) -> None:
    from .qa.messages import Spool, client_config, flush_spool

    config = client_config(args.bootstrap_servers, security_protocol=args.security_protocol,
                           sasl_mechanism=args.sasl_mechanism)
    delivered, left = flush_spool(Spool(args.spool), config, args.topic, timeout_s=args.timeout)
    print(json.dumps({"delivered": delivered, "spooled": left}))
    if left:
        raise SpectropolError(f"{args.spool}: {left} messages still undelivered (broker {args.bootstrap_servers})")


def _qa_aggregate(args) -> None:
    from .qa.aggregate import aggregate_documents, aggregate_kafka

    def printer(line):
        print(line, flush=True)

    k = options_from(args, opts.QAOptions).outlier_k
    if args.documents:
        summary = aggregate_documents(args.documents, args.summary, args.plot, k=k, printer=printer)
    else:
        if not args.bootstrap_servers:
            raise SpectropolError("qa aggregate: give --bootstrap-servers, or QA document paths to read from disk")
        from .qa.messages import client_config

        config = client_config(args.bootstrap_servers, security_protocol=args.security_protocol,
                               sasl_mechanism=args.sasl_mechanism)
        summary = aggregate_kafka(config, args.topic, args.group_id, args.summary, args.plot, run_id=args.run_id,
                                  timeout_s=args.timeout, idle_timeout_s=args.idle_timeout, k=k, printer=printer)
    print(json.dumps({"channels": summary["channels"], "outliers": len(summary["outliers"]),
                      "failed_jobs": len(summary["failed_jobs"]), "messages": summary["messages"]}))


def _provenance(args) -> None:
    from .io.provenance import read_provenance, row_provenance

    record = (row_provenance(args.product, args.row) if args.row
              else {"product": args.product} | read_provenance(args.product))
    if args.json:
        print(json.dumps(record, indent=1, default=str))
        return
    for key, value in record.items():
        if isinstance(value, dict):
            print(f"{key}:")
            for sub_key, sub_value in value.items():
                print(f"  {sub_key}: {sub_value}")
        else:
            print(f"{key}: {value}")


# -- the parser -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spectropol", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name, function, help_text, *positional):
        p = sub.add_parser(name, help=help_text)
        for arg in positional:
            p.add_argument(arg)
        p.set_defaults(func=function)
        return p

    p = command("provenance", _provenance, "what made a product: software version, workflow commit, config and "
                "sheet digests, field, inputs (Zarr stores, FITS, ECSV catalogues, JSON)", "product")
    p.add_argument("--row", metavar="CAT_ID", help="a catalogue row: the row, and what made the catalogue that "
                   "measured it (a survey catalogue's row: its field's catalogue)")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = command("simulate", _simulate, "write a simulated Measurement Set from a sky model", "ms")
    p.add_argument("--skymodel", default="resources/skymodels/demo.yaml")
    p.add_argument("--layout", default="resources/layouts/ska_low_like.yaml")
    add_options(p, opts.SimulateOptions)

    p = command("inspect", _inspect, "describe the data MSs hold, as the workflow selects them; with --out, "
                "write the selection and image geometry (the inspect_ms stage)")
    p.add_argument("ms", nargs="+")
    p.add_argument("--spw", type=int, help="spectral window (default: the only one)")
    p.add_argument("--out", help="write the selection record here (work/ms/selection.json in the workflow)")
    add_options(p, opts.SelectionOptions)
    add_options(p, opts.GeometryOptions)

    p = command("fingerprint", _fingerprint, "content hashes of every channel of an MS (fingerprint_ms)", "ms",
                "record")
    p.add_argument("--spw", type=int, default=0)
    add_options(p, opts.SelectionOptions)

    p = command("split", _split, "Stokes visibilities of channels of one MS and spw (split_channel)", "selection",
                "ms", "channels", "vis_dir", "qa_dir")
    p.add_argument("--ms-index", type=int, default=0, help="the MS's place among the inputs of the selection record")
    p.add_argument("--spw", type=int, default=0)
    p.add_argument("--ionosphere-rm", help="CSV time_mjd_s,rm_rad_m2 of ionospheric RM to derotate")
    add_options(p, opts.SplitOptions)

    p = command("image", _image, "Stokes images, PSF, beam and CLEAN of channels (image_channel)", "selection",
                "vis_dir", "channels", "image_dir", "qa_dir")
    p.add_argument("--threads", type=int, default=1)
    add_options(p, opts.ImagingOptions)
    add_options(p, opts.CleanOptions)

    p = command("cube", _cube, "channel image stores into a cube (gather_cube)", "selection", "cube", "qa")
    p.add_argument("stores", nargs="+", help="channel image stores (results/channels/BLOCK/NNNNN.zarr)")
    p.add_argument("--update", action="store_true", help="update an existing cube in place (changed planes only)")
    p.add_argument("--all-channels", action="store_true",
                   help="a plane for every channel of the selection record (NaN where no store is given)")
    add_options(p, opts.CubeOptions)

    command("cube-fits", _cube_fits, "FITS cubes per Stokes (export_cube_fits)", "cube", "out_dir")

    def faraday_options(p):
        p.add_argument("--clean", action=argparse.BooleanOptionalAction, default=True, help="run RM-CLEAN (default)")
        add_options(p, opts.RMSynthesisOptions)
        add_options(p, opts.RMCleanOptions)
        add_options(p, opts.FaradayProductsOptions)
        add_options(p, opts.DaskOptions)

    def fits_arguments(p):
        for stokes, needed in (("i", "optional"), ("q", "required"), ("u", "required"), ("v", "optional")):
            p.add_argument(f"--{stokes}", nargs="+", metavar="FITS",
                           help=f"Stokes {stokes.upper()} ({needed}): a cube with a FREQ axis, or an image per channel")
        p.add_argument("--freqs", help="frequencies (Hz), one per line in the order of the files' planes, where the "
                                       "headers have none (RM-Tools' format)")

    p = command("cube-from-fits", _cube_from_fits, "a cube store from FITS images made elsewhere (WSClean, CASA)",
                "cube", "qa")
    fits_arguments(p)
    p.add_argument("--chunk-px", type=int, default=opts.CubeOptions.chunk_px)
    p.add_argument("--shard", action="store_true", help="a file per channel plane instead of per chunk (cube.shard)")
    p = command("faraday", _faraday, "moments, RM synthesis, RM-CLEAN, peaks and the catalogue of a cube store or "
                "of FITS images, into one folder", "out_dir")
    p.add_argument("--cube", help="a cube store (results/cube/cube.zarr or one from cube-from-fits)")
    fits_arguments(p)
    faraday_options(p)
    p.add_argument("--moments-weighting", choices=("none", "noise"), default=opts.MomentsOptions.weighting,
                   help="channel weights of the Faraday moments (the config's moments.weighting)")
    add_options(p, opts.CatalogueOptions)
    p.add_argument("--ms", nargs="+", help="--primary-beam everybeam: the Measurement Sets the cube was imaged from")

    p = command("moments", _moments, "Faraday moment maps alone (the workflow's faraday_depth makes them in its pass)",
                "cube", "out", "qa")
    add_options(p, opts.MomentsOptions)
    add_options(p, opts.DaskOptions)
    p.add_argument("--chunk-mb", type=float, default=64.0, help="memory per Dask task (MB)")
    command("moments-fits", _moments_fits, "FITS moment maps (export_moment_fits)", "moments", "out_dir")

    p = command("faraday-depth", _faraday_depth, "RM synthesis, RM-CLEAN and peak maps in one pass (faraday_depth) "
                "of a cube store, or straight from FITS Q and U images", "out_dir", "qa")
    p.add_argument("--cube", help="a cube store (results/cube/cube.zarr or one from cube-from-fits)")
    for stokes in ("q", "u"):
        p.add_argument(f"--{stokes}", nargs="+", metavar="FITS",
                       help=f"Stokes {stokes.upper()}: a cube with a FREQ axis, or an image per channel")
    p.add_argument("--freqs", help="frequencies (Hz), one per line in the order of the files' planes, where the "
                                   "headers have none (RM-Tools' format)")
    faraday_options(p)
    p = command("faraday-fits", _faraday_fits, "FITS peak maps, RMSF and FDF cubes (export_faraday_fits)", "peaks",
                "out_dir")
    p.add_argument("--dirty", help="the full dirty FDF store (faraday-depth --save-fdf): export its cubes too")
    p.add_argument("--clean", help="the full clean FDF store: export its cubes too")

    p = command("primary-beam", _primary_beam, "the telescope's primary beam over a cube's field as FITS "
                "(primary_beam)", "cube", "out")
    p.add_argument("--model", choices=("everybeam", "katbeam"), required=True)
    p.add_argument("--ms", nargs="+", help="the Measurement Sets the cube was imaged from (everybeam)")

    p = command("catalogue", _catalogue, "polarised source catalogue (catalogue)", "cube", "moments", "peaks",
                "out_dir", "qa")
    add_options(p, opts.CatalogueOptions)

    p = command("report", _report, "report figures (report_field and report_sources)", "moments", "peaks",
                "candidates", "catalogue", "out_dir")
    p.add_argument("--cube", help="the cube store: restoring beams on the maps, and the sources' Q, U spectra")
    p.add_argument("--brightest", type=int, default=4, help="sources with a page in the spectra figure")
    p.add_argument("--spectra", help="the catalogue's spectra.fits: the sources' measured Q, U spectra")

    qa = sub.add_parser("qa", help="QA: summarise documents, resend the spool, aggregate a run").add_subparsers(
        dest="qa", required=True)
    summary = qa.add_parser("summary", help="the run's QA summary from QA documents (qa_summary)")
    summary.add_argument("summary")
    summary.add_argument("plot")
    summary.add_argument("documents", nargs="+", help="QA documents or folders of them")
    add_options(summary, opts.QAOptions)
    summary.set_defaults(func=_qa_summary)
    flush = qa.add_parser("flush", help="send the messages a run spooled when the broker was unreachable")
    _kafka_arguments(flush)
    flush.add_argument("--spool", default=".snakemake/kafka-qa-spool.jsonl")
    flush.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the broker")
    flush.set_defaults(func=_qa_flush)
    aggregate = qa.add_parser("aggregate", help="follow a run's QA on Kafka (or read QA documents) and summarise it")
    aggregate.add_argument("documents", nargs="*", help="QA documents or folders of them: aggregate these, no Kafka")
    _kafka_arguments(aggregate)
    aggregate.add_argument("--group-id", default="spectropol-qa-aggregator")
    aggregate.add_argument("--run-id", help="follow this run only and stop at its end (default: any run's end)")
    aggregate.add_argument("--timeout", type=float, default=3600.0, help="stop after this many seconds")
    aggregate.add_argument("--idle-timeout", type=float, help="stop when nothing arrived for this many seconds")
    aggregate.add_argument("--summary", default="qa-summary.json")
    aggregate.add_argument("--plot", default="qa-summary.png")
    add_options(aggregate, opts.QAOptions)
    aggregate.set_defaults(func=_qa_aggregate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        args.func(args)
    except SpectropolError as err:
        print(f"spectropol: error: {err}", file=sys.stderr)
        return 1
    return 0


def run() -> None:
    """The console script: main(), then the process ends without the interpreter's teardown.

    By the time main() returns every product is closed and renamed into place; what is left is
    Python unloading numba, astropy, zarr and dask module by module, 0.19 s of a 2.1 s
    faraday-depth run (benchmarks/faraday.py). The streams are flushed first. An exception other
    than SpectropolError still ends the usual way, with its traceback."""
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
