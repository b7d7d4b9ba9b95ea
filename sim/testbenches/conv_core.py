"""cocotb testbench: convolution cores (one per ``instances`` entry) against ``ConvCoreModel``.

The top is a ``SideBySide`` of convolution cores (ports ``c<k>__i__valid`` ...); each instance
runs its cases concurrently with its own ``ConvDriver``. The report holds the totals and
per-instance counts of everything compared.
"""

from __future__ import annotations

import cocotb
from spikeforge.rtl.cores.conv_core import ConvCoreParams
from spikeforge.sim.testbenches.conv_core_bench import ConvDriver
from spikeforge.sim.testbenches.core import run_instances
from spikeforge.sim.testbenches.harness import params_from_json


@cocotb.test()
async def conv_core_cases(dut):
    """Run every instance's cases; any difference from the reference fails the test."""
    await run_instances(
        dut,
        lambda pins, inst: ConvDriver(
            pins, params_from_json(ConvCoreParams, inst["params"]), inst["prefix"]
        ),
    )
