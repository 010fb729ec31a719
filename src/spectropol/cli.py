"""Command line: ``spectropol simulate`` (a demo MS) and ``spectropol inspect`` (what an MS holds).

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
