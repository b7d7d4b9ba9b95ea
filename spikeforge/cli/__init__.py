"""The ``spikeforge`` command line (SPEC section 3.3).

Each subcommand lives with its concern and is imported only when it runs, so ``--help`` stays
fast and never imports torch or Amaranth.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from spikeforge.cli.errors import UsageError

#: subcommand -> (module holding ``add_arguments(parser)`` and ``main(args) -> int``, help line)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("spikeforge.cli.train", "train a quantised SNN and export its bundle"),
    "run": ("spikeforge.cli.run", "run a bundle on the golden integer model"),
    "verilog": ("spikeforge.cli.verilog", "write a bundle's chip (or one core) as Verilog"),
    "rtl-sim": (
        "spikeforge.cli.rtl_sim",
        "run a bundle on its generated chip (cocotb), check vs golden",
    ),
    "pim-sweep": (
        "spikeforge.cli.pim_sweep",
        "accuracy with the first layer in SRAM-PIM vs ADC bits and analog non-idealities",
    ),
}


def _version() -> str:
    try:
        return version("spikeforge")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spikeforge",
        description="Train quantised spiking networks, run them bit-exactly on the golden model, "
        "and generate and verify their hardware.",
    )
    parser.add_argument("--version", action="version", version=f"spikeforge {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_line) in COMMANDS.items():
        command = sub.add_parser(name, help=help_line, description=help_line)
        command.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return importlib.import_module(args._module).main(args)
    except UsageError as exc:
        print(f"spikeforge {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
