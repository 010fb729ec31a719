"""Command line: ``spectropol simulate`` (a demo MS), ``spectropol inspect`` (what an MS holds),
``spectropol qa flush`` (resend spooled QA messages) and ``spectropol qa aggregate`` (a run's QA).

Errors a user can fix are printed as one line, with exit status 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from .errors import SpectropolError


def _simulate(args) -> None:
    from .simulate import simulate_ms

    summary = simulate_ms(
        args.ms, args.skymodel, args.layout, ra_deg=args.ra_deg, dec_deg=args.dec_deg,
        start_freq_hz=args.start_freq_hz, chan_width_hz=args.chan_width_hz, nchan=args.nchan, ntimes=args.ntimes,
        integration_s=args.integration_s, hour_angle_span_h=args.hour_angle_span_h, noise_jy=args.noise_jy,
        feeds=args.feeds, seed=args.seed,
    )
    print(json.dumps({k: v for k, v in summary.items() if k != "sources"}))


def _inspect(args) -> None:
    from .ms import inspect_ms

    selection = inspect_ms(args.ms, column=args.column, spw=args.spw, field=args.field)
    summary = selection.to_dict()
    summary["freqs_hz"] = [summary["freqs_hz"][0], summary["freqs_hz"][-1], len(summary["freqs_hz"])]
    print(json.dumps(summary, indent=2))


def _kafka_arguments(parser) -> None:
    parser.add_argument("--bootstrap-servers", help="Kafka bootstrap servers host:port[,host:port]")
    parser.add_argument("--topic", default="spectropol-qa")
    parser.add_argument("--security-protocol", default="PLAINTEXT", choices=("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"))
    parser.add_argument("--sasl-mechanism", help="credentials from SPECTROPOL_KAFKA_USERNAME and SPECTROPOL_KAFKA_PASSWORD")


def _qa_flush(args) -> None:
    from .qa_messages import Spool, client_config, flush_spool

    config = client_config(args.bootstrap_servers, security_protocol=args.security_protocol, sasl_mechanism=args.sasl_mechanism)
    delivered, left = flush_spool(Spool(args.spool), config, args.topic, timeout_s=args.timeout)
    print(json.dumps({"delivered": delivered, "spooled": left}))
    if left:
        raise SpectropolError(f"{args.spool}: {left} messages still undelivered (broker {args.bootstrap_servers})")


def _qa_aggregate(args) -> None:
    from .qa_aggregate import aggregate_documents, aggregate_kafka

    def printer(line):
        print(line, flush=True)

    if args.documents:
        summary = aggregate_documents(args.documents, args.summary, args.plot, k=args.k, printer=printer)
    else:
        if not args.bootstrap_servers:
            raise SpectropolError("qa aggregate: give --bootstrap-servers, or QA document paths to read from disk")
        from .qa_messages import client_config

        config = client_config(args.bootstrap_servers, security_protocol=args.security_protocol,
                               sasl_mechanism=args.sasl_mechanism)
        summary = aggregate_kafka(config, args.topic, args.group_id, args.summary, args.plot, run_id=args.run_id,
                                  timeout_s=args.timeout, idle_timeout_s=args.idle_timeout, k=args.k, printer=printer)
    print(json.dumps({"channels": summary["channels"], "outliers": len(summary["outliers"]),
                      "failed_jobs": len(summary["failed_jobs"]), "messages": summary["messages"]}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spectropol", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    sim = sub.add_parser("simulate", help="write a simulated Measurement Set from a sky model")
    sim.add_argument("ms", help="output Measurement Set path")
    sim.add_argument("--skymodel", default="resources/skymodels/demo.yaml")
    sim.add_argument("--layout", default="resources/layouts/ska_low_like.yaml")
    sim.add_argument("--ra-deg", type=float, default=60.0)
    sim.add_argument("--dec-deg", type=float, default=-30.0)
    sim.add_argument("--start-freq-hz", type=float, default=120e6)
    sim.add_argument("--chan-width-hz", type=float, default=1e6)
    sim.add_argument("--nchan", type=int, default=64)
    sim.add_argument("--ntimes", type=int, default=32)
    sim.add_argument("--integration-s", type=float, default=10.0)
    sim.add_argument("--hour-angle-span-h", type=float, default=6.0)
    sim.add_argument("--noise-jy", type=float, default=1.0)
    sim.add_argument("--feeds", choices=("linear", "circular"), default="linear")
    sim.add_argument("--seed", type=int, default=1)
    sim.set_defaults(func=_simulate)

    ins = sub.add_parser("inspect", help="describe the data an MS holds, as the workflow selects it")
    ins.add_argument("ms")
    ins.add_argument("--column", default="DATA")
    ins.add_argument("--spw", type=int)
    ins.add_argument("--field", type=int)
    ins.set_defaults(func=_inspect)

    qa = sub.add_parser("qa", help="QA messages: resend the spool, aggregate a run").add_subparsers(dest="qa", required=True)
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
    aggregate.add_argument("--k", type=float, default=3.0, help="flag channels whose rms exceeds k x the median")
    aggregate.add_argument("--summary", default="qa-summary.json")
    aggregate.add_argument("--plot", default="qa-summary.png")
    aggregate.set_defaults(func=_qa_aggregate)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        args.func(args)
    except SpectropolError as err:
        print(f"spectropol: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
