"""``python -m spikeforge.studies.mapping``: Zou et al.'s worked mapping example (Tables 2-3),
or the placements of a bundle's layers on fixed-size cores (``spikeforge.rtl.chip.mapping``)."""

from __future__ import annotations

from spikeforge.rtl.chip.mapping import (
    ZOU_CORE,
    CoreSize,
    LayerShape,
    MappingError,
    bundle_report,
    channel_major,
    format_table,
    place_layer,
)


def main(argv: list[str] | None = None) -> int:
    """``python -m spikeforge.studies.mapping [BUNDLE] [--core AXONSxNEURONS]``: the worked
    example of Tables 2-3, or the placements of a bundle's layers."""
    import argparse
    import sys

    from spikeforge.sim.bundle import BundleError, load_bundle

    parser = argparse.ArgumentParser(
        prog="python -m spikeforge.studies.mapping", description=main.__doc__
    )
    parser.add_argument("bundle", nargs="?", help="bundle directory (default: Table 2 example)")
    parser.add_argument("--core", default=str(ZOU_CORE), help="core size (default 1152x1024)")
    args = parser.parse_args(argv)
    try:
        core = CoreSize.parse(args.core)
        if args.bundle is None:
            example = LayerShape(4, 4, 128, 256, kernel=2, stride=2, name="example")
            plans = [
                channel_major(example, k_rep=1, k_wei=2, core=core, w_in=4, h_in=4),
                place_layer(example, k_rep=1, k_wei=2, core=core),
            ]
            print("Zou et al. Tables 2-3 (4x4x128 map, 2x2x128x256 kernel, stride 2, k_wei 2):")
            print(format_table(plans))
            return 0
        print(bundle_report(load_bundle(args.bundle).layers, core))
    except (MappingError, BundleError, OSError) as exc:
        print(f"python -m spikeforge.studies.mapping: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
