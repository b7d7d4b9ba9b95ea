"""The ``spikeforge`` command line (docs/cli.md): one module per subcommand, one error handler.

Each subcommand lives with its concern and is imported only when it runs, so ``--help`` stays
fast and never imports torch. Every failure is one line on stderr (plus a hint) and an exit
code from ``spikeforge.cli.errors``; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from spikeforge.cli.errors import EXIT_INTERRUPTED, classify
from spikeforge.cli.options import Parser

#: subcommand -> (module holding ``add_arguments(parser)`` and ``main(args) -> int``, help line)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("spikeforge.cli.train", "train a quantised SNN and export its bundle"),
    "run": ("spikeforge.cli.run", "run a bundle on the golden integer model"),
    "verilog": ("spikeforge.cli.verilog", "write a bundle's chip (or one core) as Verilog"),
    "rtl-sim": (
        "spikeforge.cli.rtl_sim",
        "run a bundle on its generated chip (cocotb), check vs golden",
    ),
    "merge-results": (
        "spikeforge.cli.merge_results",
        "join --shard partial results of rtl-sim into one RESULT.npz",
    ),
    "pim-sweep": (
        "spikeforge.cli.pim_sweep",
        "accuracy with the first layer in SRAM-PIM vs ADC bits and analog non-idealities",
    ),
}

EPILOG = (
    "exit codes: 0 success, 1 RTL differs from golden, 2 usage or input error, 3 a tool "
    "(simulator, lint) failed, 4 internal error, 130 interrupted; see docs/cli.md"
)


def _version() -> str:
    try:
        return version("spikeforge")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="spikeforge",
        description="Train quantised spiking networks, run them bit-exactly on the golden model, "
        "and generate and verify their hardware.",
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"spikeforge {_version()}")
    parser.add_argument(
        "--debug", action="store_true", help="show the full traceback of any failure"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, (module, help_line) in COMMANDS.items():
        command = sub.add_parser(name, help=help_line, description=help_line, epilog=EPILOG)
        command.set_defaults(_module=module)
        command.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
        importlib.import_module(module).add_arguments(command)
    return parser


def _command(argv: Sequence[str]) -> str:
    return next((f"spikeforge {a}" for a in argv if a in COMMANDS), "spikeforge")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; every failure becomes one line on stderr and an exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 0
        return importlib.import_module(args._module).main(args)
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else 0
    except BaseException as exc:
        if debug:
            traceback.print_exc()
        failure = classify(exc)
        try:
            print(f"{_command(argv)}: error: {failure.line}", file=sys.stderr)
            if failure.hint:
                print(failure.hint, file=sys.stderr)
        except BaseException:  # stderr itself is gone (closed pipe): the code still tells
            pass
        return failure.code if not isinstance(exc, KeyboardInterrupt) else EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
