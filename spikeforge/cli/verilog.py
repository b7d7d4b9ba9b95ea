"""``spikeforge verilog``: a bundle's chip, or one core, as Verilog.

``spikeforge verilog BUNDLE --out DIR`` writes ``DIR/NAME.v`` (the whole chip, weights as memory
initial contents) and ``DIR/NAME.md`` (ports and integration note). Without a bundle the core
options make one core: ``spikeforge verilog --n-axons 64 --n-neurons 32 --lanes 4 --out core.v``.
Also runs on its own: ``python -m spikeforge.cli.verilog ...``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spikeforge.rtl.cores.core import LANE_CHOICES, CoreParams, core_verilog
from spikeforge.sim.semantics import LEAK_MODES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The core's parameters as options, plus the output path, module name and lint switch."""
    add = parser.add_argument
    add("bundle", nargs="?", help="bundle directory: write its whole chip (else one core)")
    add("--n-axons", type=int, help="inputs (axons) of the core (no bundle)")
    add("--n-neurons", type=int, help="neurons of the core (no bundle)")
    add("--w-bits", type=int, default=8, help="signed weight width, 2..8 (default 8)")
    add("--v-bits", type=int, default=16, help="membrane potential width, 8..24 (default 16)")
    add(
        "--lanes",
        type=int,
        choices=LANE_CHOICES,
        help="neurons updated per cycle (default 1 for a core, 16 for a chip)",
    )
    add("--max-neurons", type=int, help="chip: split layers with more neurons over cores")
    add(
        "--core",
        metavar="AXONSxNEURONS",
        help="chip: fixed core size, spikeforge.rtl.chip.mapping splits",
    )
    add("--feed", choices=("auto", "pim", "sums"), default="auto", help="chip: layer 1 feed")
    add("--adc-bits", type=int, help="chip: PIM ADC bits (default lossless)")
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
    add("--name", help="Verilog module name (default sf_chip, or sf_core)")
    add("--out", type=Path, required=True, help="a .v file, or a directory for NAME.v")
    add("--lint", action="store_true", help="run verilator --lint-only -Wall on the result")


def params_from_args(args: argparse.Namespace) -> CoreParams:
    return CoreParams(
        n_axons=args.n_axons,
        n_neurons=args.n_neurons,
        w_bits=args.w_bits,
        v_bits=args.v_bits,
        lanes=args.lanes or 1,
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
    from spikeforge.cli.errors import UsageError

    if args.bundle is not None:
        return chip_main(args)
    if args.n_axons is None or args.n_neurons is None:
        raise UsageError("give a BUNDLE directory, or --n-axons and --n-neurons for one core")
    args.name = args.name or "sf_core"
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
        return _lint(out, args.name)
    return 0


def _lint(path: Path, name: str) -> int:
    from spikeforge.rtl.gateware.emit import lint

    result = lint(path, name)
    if result.returncode != 0:
        print(result.stderr, file=sys.stderr)
        return 1
    print("verilator --lint-only -Wall: clean (waivers: rtl/gateware/emit.py LINT_WAIVERS)")
    return 0


def chip_main(args: argparse.Namespace) -> int:
    """The bundle's chip: ``DIR/NAME.v`` and the integration note ``DIR/NAME.md``."""
    from spikeforge.cli.errors import UsageError
    from spikeforge.pim.model import PimConfig
    from spikeforge.rtl.chip.mapping import CoreSize
    from spikeforge.rtl.chip.notes import integration_note
    from spikeforge.rtl.chip.top import (
        ChipError,
        ChipOptions,
        chip_summary,
        chip_verilog,
        plan_chip,
    )
    from spikeforge.sim.bundle import BundleError, load_bundle

    name = args.name or "sf_chip"
    try:
        bundle = load_bundle(args.bundle)
        options = ChipOptions(
            lanes=args.lanes or 16,
            max_neurons=args.max_neurons,
            core=CoreSize.parse(args.core) if args.core else None,
            feed=args.feed,
            pim=PimConfig(adc_bits=args.adc_bits),
        )
        plan = plan_chip(bundle, options)
    except (BundleError, ChipError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    if args.out.suffix in (".v", ".sv"):
        raise UsageError("--out is a directory for a bundle's chip (NAME.v and NAME.md)")
    args.out.mkdir(parents=True, exist_ok=True)
    verilog = chip_verilog(plan, name)
    path = args.out / f"{name}.v"
    path.write_text(verilog)
    (args.out / f"{name}.md").write_text(integration_note(plan, verilog, name))
    print(f"wrote {path} and {args.out / f'{name}.md'}")
    print("\n".join(chip_summary(plan)))
    if args.lint:
        return _lint(path, name)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    sys.exit(main(parser.parse_args()))
