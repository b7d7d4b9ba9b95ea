"""``spikeforge verilog``: a bundle's chip, or one core, as Verilog.

``spikeforge verilog BUNDLE --out DIR`` writes ``DIR/NAME.v`` (the whole chip behind AXI4-Stream
and AXI4-Lite, weights as memory initial contents), ``DIR/NAME.md`` (ports and integration note),
``DIR/NAME_regs.md`` and ``DIR/NAME_regs.h`` (the register map); ``--top chip`` writes the bare
chip and its note. Without a bundle the core
options make one core: ``spikeforge verilog --n-axons 64 --n-neurons 32 --lanes 4 --out core.v``.
The work is ``spikeforge.api.verilog`` / ``verilog_core``.
"""

from __future__ import annotations

import argparse
from typing import Any

from spikeforge.checks import INT_RANGES
from spikeforge.cli.options import core_option, int_option
from spikeforge.rtl.cores.core import LANE_CHOICES
from spikeforge.sim.semantics import LEAK_MODES


def _adc_bits() -> tuple:
    from spikeforge.pim.adc import ADC_BITS_RANGE

    lo, hi = ADC_BITS_RANGE
    return int_option("--adc-bits", lo, hi, f"ADC bits must be within [{lo}, {hi}]"), f"{lo}..{hi}"


def add_chip_options(parser: argparse.ArgumentParser, lanes_help: str) -> None:
    """Options shared with ``rtl-sim``: how the bundle's layers map onto cores."""
    add = parser.add_argument
    add("--lanes", type=int, choices=LANE_CHOICES, help=lanes_help)
    lo, hi = INT_RANGES["max_neurons"]
    add(
        "--max-neurons",
        type=int_option("--max-neurons", lo, hi),
        help=f"split layers with more neurons over several cores ({lo}..{hi})",
    )
    add(
        "--core",
        metavar="AXONSxNEURONS",
        help="fixed core size; spikeforge.rtl.chip.mapping splits the layers",
    )
    add("--feed", choices=("auto", "pim", "sums"), default="auto", help="layer 1 feed (direct)")
    check, shown = _adc_bits()
    add("--adc-bits", type=check, help=f"PIM ADC bits ({shown}; default lossless, ideal)")


def chip_options(args: argparse.Namespace) -> dict[str, Any]:
    """What ``add_chip_options`` parsed, as the keyword arguments of ``api.verilog`` and
    ``api.rtl_sim`` (16 lanes unless ``--lanes`` says otherwise)."""
    return {
        "lanes": args.lanes or 16,
        "max_neurons": args.max_neurons,
        "core": args.core,
        "feed": args.feed,
        "adc_bits": args.adc_bits,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The core's parameters as options, plus the output path, module name and lint switch."""
    add = parser.add_argument
    add("bundle", nargs="?", help="bundle directory: write its whole chip (else one core)")
    for name, what in (("n_axons", "inputs (axons)"), ("n_neurons", "neurons")):
        lo, hi = INT_RANGES[name]
        option = "--" + name.replace("_", "-")
        add(option, type=int_option(option, lo, hi), help=f"{what} of one core ({lo}..{hi})")
    for name, what, default in (
        ("w_bits", "signed weight width", 8),
        ("v_bits", "membrane potential width", 16),
        ("load_bits", "signed LOAD value width", 16),
        ("max_frac", "largest leak 'frac' supported", 16),
    ):
        option = "--" + name.replace("_", "-")
        check, shown = core_option(option, name)
        add(option, type=check, default=default, help=f"{what} ({shown}, default {default})")
    add_chip_options(parser, "neurons updated per cycle (default 1 for a core, 16 for a chip)")
    add("--global-threshold", action="store_true", help="one threshold register, no memory")
    add("--bias", action="store_true", help="per-neuron bias memory")
    add("--load", action="store_true", help="accept LOAD(neuron, value) events")
    add(
        "--acc-bits",
        type=int_option("--acc-bits", 2, 32),
        help="accumulator width (2..32, above --w-bits; default: the exact bound)",
    )
    add(
        "--leak-modes",
        default=",".join(LEAK_MODES),
        help=f"comma-separated leak modes built in hardware, from {', '.join(LEAK_MODES)} "
        "(default: all)",
    )
    add(
        "--top",
        choices=("axi", "chip"),
        default="axi",
        help="with a bundle: the chip behind AXI4-Stream/AXI4-Lite with its register map "
        "(axi, default) or the bare chip (chip)",
    )
    add("--name", help="Verilog module name, an identifier (default sf_chip, or sf_core)")
    add("--out", required=True, help="a .v file, or a directory for NAME.v (and NAME.md)")
    add("--lint", action="store_true", help="run verilator --lint-only -Wall on the result")


def _leak_modes(text: str) -> tuple[str, ...]:
    from spikeforge.cli.errors import UsageError

    modes = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in modes if m not in LEAK_MODES]
    if unknown or not modes:
        raise UsageError(f"--leak-modes: unknown {unknown or text!r}; choose from {LEAK_MODES}")
    return modes


def main(args: argparse.Namespace) -> int:
    """Write the Verilog (and lint it when asked); 0, 2 on bad parameters, 3 on lint findings."""
    from spikeforge import api
    from spikeforge.cli.errors import ToolFailed, UsageError, user_errors

    try:
        if args.bundle is not None:
            result = api.verilog(
                args.bundle,
                args.out,
                name=args.name or "sf_chip",
                lint=args.lint,
                top=args.top,
                **chip_options(args),
            )
            print("wrote " + ", ".join(str(p) for p in result.paths))
            print("\n".join(result.summary))
        else:
            if args.n_axons is None or args.n_neurons is None:
                raise UsageError(
                    "give a BUNDLE directory, or --n-axons and --n-neurons for one core"
                )
            result, _ = api.verilog_core(
                args.out,
                name=args.name or "sf_core",
                lint=args.lint,
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
                leak_modes=_leak_modes(args.leak_modes),
            )
            print(f"wrote {result.paths[0]} ({result.summary[0]})")
    except user_errors() as exc:
        raise UsageError(str(exc)) from None
    if result.lint_ok is False:
        log = result.paths[0].with_suffix(".lint.log")
        log.write_text(result.lint_log)
        raise ToolFailed(f"verilator --lint-only -Wall found problems in {result.paths[0]}", log)
    if result.lint_ok:
        print(
            "verilator --lint-only -Wall: clean (waivers on their lines only, reasons at the top)"
        )
    return 0
