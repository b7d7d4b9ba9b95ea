"""Command line for one core's Verilog: ``add_arguments(parser)`` and ``main(args)``.

Mounted as ``spikeforge verilog --n-axons ... --out ...``; also runs on its own:
``python -m rtl.verilog_cli --n-axons 64 --n-neurons 32 --lanes 4 --out core.v --lint``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rtl.core import LANE_CHOICES, CoreParams, core_verilog
from sim.semantics import LEAK_MODES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The core's parameters as options, plus the output path, module name and lint switch."""
    add = parser.add_argument
    add("--n-axons", type=int, required=True, help="inputs (axons) of the core")
    add("--n-neurons", type=int, required=True, help="neurons of the core")
    add("--w-bits", type=int, default=8, help="signed weight width, 2..8 (default 8)")
    add("--v-bits", type=int, default=16, help="membrane potential width, 8..24 (default 16)")
    add("--lanes", type=int, default=1, choices=LANE_CHOICES, help="neurons updated per cycle")
    add("--global-threshold", action="store_true", help="one threshold register, no memory")
    add("--bias", action="store_true", help="per-neuron bias memory")
    add("--load", action="store_true", help="accept LOAD(neuron, value) events")
    add("--load-bits", type=int, default=16, help="signed LOAD value width (default 16)")
    add("--acc-bits", type=int, default=None, help="accumulator width (default: exact bound)")
    add("--max-frac", type=int, default=16, help="largest leak 'frac' supported (default 16)")
    add(
        "--leak-modes",
        default=",".join(LEAK_MODES),
        help="comma-separated leak modes built in hardware (default: all)",
    )
    add("--name", default="sf_core", help="Verilog module name (default sf_core)")
    add("--out", type=Path, required=True, help="a .v file, or a directory for NAME.v")
    add("--lint", action="store_true", help="run verilator --lint-only -Wall on the result")


def params_from_args(args: argparse.Namespace) -> CoreParams:
    return CoreParams(
        n_axons=args.n_axons,
        n_neurons=args.n_neurons,
        w_bits=args.w_bits,
        v_bits=args.v_bits,
        lanes=args.lanes,
        neuron_threshold=not args.global_threshold,
        bias=args.bias,
        load=args.load,
        load_bits=args.load_bits,
        acc_bits=args.acc_bits,
        max_frac=args.max_frac,
        leak_modes=tuple(m.strip() for m in args.leak_modes.split(",") if m.strip()),
    )


def main(args: argparse.Namespace) -> int:
    """Write the Verilog (and lint it when asked); 0 on success, 2 on bad parameters."""
    from sim.cli import UsageError

    try:
        params = params_from_args(args)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    is_file = args.out.suffix in (".v", ".sv") and not args.out.is_dir()
    out = args.out if is_file else args.out / f"{args.name}.v"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(core_verilog(params, name=args.name))
    print(f"wrote {out} ({params.groups} lane groups, acc_bits {params.acc_bits})")
    if args.lint:
        from rtl.emit import lint

        result = lint(out, args.name)
        if result.returncode != 0:
            print(result.stderr, file=sys.stderr)
            return 1
        print("verilator --lint-only -Wall: clean (waivers: rtl/emit.py LINT_WAIVERS)")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    sys.exit(main(parser.parse_args()))
