"""Event-level reference of ``spikeforge.rtl.cores.core.Core``: what its out stream, ``v`` and
counters must be.

The arithmetic is ``spikeforge.sim.semantics``; this file only adds the event protocol (accumulate
exactly, one ``neuron_step`` per TICK, CLEAR) and the counters, so testbenches compare against
docs/semantics.md.
"""

from __future__ import annotations

import numpy as np
from spikeforge.rtl.cores.core import CoreConfig, CoreParams, Op
from spikeforge.sim.semantics import neuron_step, signed_range


class AccumulatorOverflow(ValueError):
    """A stimulus drove an accumulator outside the core's ``acc_bits`` range."""


class CoreModel:
    """Feed it the in-stream events; it returns the out-stream events and tracks ``v``."""

    def __init__(self, params: CoreParams, config: CoreConfig):
        config.validate(params)
        self.params, self.config = params, config
        self.weights = np.asarray(config.weights, dtype=np.int64)
        self.theta = config.theta_vector(params)
        self.bias = config.bias_vector(params)
        self.s = np.zeros(params.n_neurons, dtype=np.int64)
        self.v = np.zeros(params.n_neurons, dtype=np.int64)
        self.counters = {"in_events": 0, "syn_ops": 0, "out_spikes": 0}
        #: Coverage facts for test reports: updates clamped at the top and bottom rail.
        self.stats = {"sat_hi": 0, "sat_lo": 0, "spikes": 0, "ticks": 0}

    def set_v(self, neuron: int, value: int) -> None:
        """A configuration-port write of ``v`` (debug and test presets)."""
        self.v[neuron] = value

    def event(self, op: int, index: int = 0, value: int = 0) -> list[tuple[int, int]]:
        """Apply one in-stream event; return the ``(op, index)`` events it puts out."""
        p = self.params
        if op == Op.SPIKE.value:
            self.counters["in_events"] += 1
            if index < p.n_axons:
                column = self.weights[:, index]
                self.s += column
                self.counters["syn_ops"] += int(np.count_nonzero(column))
            self._check_acc()
            return []
        if op == Op.LOAD.value:
            self.counters["in_events"] += 1
            if p.load and index < p.n_neurons:
                self.s[index] += value
            self._check_acc()
            return []
        if op == Op.CLEAR.value:
            self.s[:] = 0
            self.v[:] = 0
            return [(Op.CLEAR.value, 0)]
        return self._tick()

    def _tick(self) -> list[tuple[int, int]]:
        c = self.config
        a = (self.s >> c.input_shift) + self.bias
        raw = c.leak.apply(self.v) + a
        lo, hi = signed_range(self.params.v_bits)
        self.stats["sat_hi"] += int(np.sum(raw > hi))
        self.stats["sat_lo"] += int(np.sum(raw < lo))
        self.v, spikes = neuron_step(
            self.v, a, self.theta, c.leak, c.reset, c.fire, self.params.v_bits
        )
        self.s[:] = 0
        fired = np.flatnonzero(spikes)
        self.counters["out_spikes"] += len(fired)
        self.stats["spikes"] += len(fired)
        self.stats["ticks"] += 1
        return [(Op.SPIKE.value, int(n)) for n in fired] + [(Op.TICK.value, 0)]

    def _check_acc(self) -> None:
        lo, hi = signed_range(self.params.acc_bits)
        if self.s.min() < lo or self.s.max() > hi:
            raise AccumulatorOverflow(
                f"accumulator sum outside the {self.params.acc_bits}-bit range of this core"
            )
