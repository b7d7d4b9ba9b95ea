"""The per-lane neuron update of docs/semantics.md, as a pipelined Amaranth component.

Five register stages, each loaded on ``en``, so that no path is longer than one multiply or one
carry chain plus a shifter (ECP5 at 100 MHz, see ``spikeforge.synth``):

1. the inputs and the configuration, with ``lam`` pre-scaled to ``lam << (max_frac - frac)``;
2. ``v * (lam << (max_frac - frac))`` (a DSP), ``v - (v >> k)``, ``s >> input_shift``;
3. ``leak(v)`` for the mode (the product's bits from ``max_frac`` up), ``a = (s >> input_shift)
   + bias``;
4. ``u = sat(leak(v) + a)``;
5. fire (``u >= theta``) and reset (``u - theta`` or 0), side by side: the outputs are
   registers (they drive the ``v`` memory's write data and the spike emitter).

``LATENCY`` counts the stages.

The "mult" leak ``(v * lam) >> frac`` is computed as ``(v * (lam << (max_frac - frac))) >>
max_frac``: the same floor (the product is only multiplied by a power of two first), but the
shift after the multiplier is a fixed bit slice instead of a barrel shifter per lane, and the
variable shift moves to the shared configuration (``lam << (max_frac - frac)`` depends on the
configuration only, so all lanes of a core share it after Yosys' ``opt_merge``). It needs the
configuration's ranges: ``frac <= max_frac`` and ``lam <= 2^frac`` (``CoreConfig.validate``).
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, Value, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from spikeforge.rtl.gateware.saturate import saturated
from spikeforge.sim.semantics import FIRE_MODES, LEAK_MODES, RESET_MODES, signed_range

#: Mode register codes: the index of the mode's name in ``spikeforge.sim.semantics``' tuples.
LEAK_CODE = {name: code for code, name in enumerate(LEAK_MODES)}
RESET_CODE = {name: code for code, name in enumerate(RESET_MODES)}
FIRE_CODE = {name: code for code, name in enumerate(FIRE_MODES)}


def neuron_config_layout(v_bits: int, acc_bits: int, max_frac: int) -> data.StructLayout:
    """Run-time neuron configuration shared by all lanes of a core (leak, reset, fire, shift)."""
    return data.StructLayout(
        {
            "leak": unsigned(2),
            "reset": unsigned(2),
            "fire": unsigned(1),
            "lam": unsigned(max_frac + 1),
            "frac": unsigned(max(1, max_frac.bit_length())),
            "k": unsigned(max(1, (v_bits - 1).bit_length())),
            "input_shift": unsigned(max(1, acc_bits.bit_length())),
        }
    )


class NeuronUpdate(wiring.Component):
    """One lane of the step update: ``(s, v, bias, theta) -> (v_next, spike)``, ``LATENCY`` later.

    Inputs (and ``cfg``) are captured when ``en`` is high, and move one stage on every cycle
    with ``en`` high; ``v_next``/``spike`` belong to the inputs captured ``LATENCY`` ``en``
    cycles earlier. ``leak_modes`` lists the leak modes built in hardware; a mode left out
    behaves as ``none``.
    """

    #: ``en`` cycles from capturing the inputs to their ``v_next``/``spike``.
    LATENCY = 5

    def __init__(
        self,
        *,
        v_bits: int,
        acc_bits: int,
        bias_bits: int,
        max_frac: int = 16,
        leak_modes: tuple[str, ...] = LEAK_MODES,
    ):
        self.v_bits, self.acc_bits, self.bias_bits = v_bits, acc_bits, bias_bits
        self.max_frac, self.leak_modes = max_frac, tuple(leak_modes)
        super().__init__(
            {
                "en": In(1),
                "cfg": In(neuron_config_layout(v_bits, acc_bits, max_frac)),
                "valid": In(1),
                "s": In(signed(acc_bits)),
                "v": In(signed(v_bits)),
                "bias": In(signed(bias_bits)),
                "theta": In(signed(v_bits)),
                "v_next": Out(signed(v_bits)),
                "spike": Out(1),
            }
        )

    def _stage(self, m: Module, name: str, values: dict) -> dict[str, Signal]:
        """Registers ``<name>_<key>`` loaded with ``values`` on ``en``."""
        regs = {}
        for key, value in values.items():
            shape = value.shape() if hasattr(value, "shape") else unsigned(1)
            regs[key] = Signal(shape, name=f"{name}_{key}")
            with m.If(self.en):
                m.d.sync += regs[key].eq(value)
        return regs

    def elaborate(self, platform):
        m = Module()
        # |leak(v)| <= |v| for every mode (lam <= 2^frac): one bit of headroom is plenty.
        width = self.v_bits + 2
        a_width = max(self.acc_bits, self.bias_bits) + 1
        # Stage 1: inputs and configuration, straight from the memories; lam pre-scaled.
        lam_scaled = Signal(unsigned(self.max_frac + 1), name="lam_scaled")
        up = (self.max_frac - self.cfg.frac)[: max(1, self.max_frac.bit_length())]
        with m.If(self.cfg.frac <= self.max_frac):  # else (out of range) no "mult" leak term
            m.d.comb += lam_scaled.eq(self.cfg.lam << up)
        p1 = self._stage(
            m,
            "p1",
            {"v": self.v, "s": self.s, "bias": self.bias, "theta": self.theta,
             "valid": self.valid, "cfg": Value.cast(self.cfg), "lam": lam_scaled},
        )  # fmt: skip
        cfg1 = self.cfg.shape()(p1["cfg"])
        # Stage 2: the product for "mult" (its bits from max_frac up: a fixed slice, no
        # shifter), the whole "shift" leak, the input shift.
        prod = Signal(signed(self.v_bits + self.max_frac + 2), name="leak_prod")
        scaled = Signal(signed(width), name="leak_scaled")
        shifted = Signal(signed(self.v_bits + 1), name="leak_shifted")
        m.d.comb += [
            prod.eq(p1["v"] * p1["lam"]),
            scaled.eq(prod >> self.max_frac),
            shifted.eq(p1["v"] - (p1["v"] >> cfg1.k)),
        ]
        p2 = self._stage(
            m,
            "p2",
            {"prod": scaled, "shifted": shifted, "v": p1["v"], "s": p1["s"] >> cfg1.input_shift,
             "bias": p1["bias"], "theta": p1["theta"], "valid": p1["valid"],
             "cfg": p1["cfg"]},
        )  # fmt: skip
        cfg2 = self.cfg.shape()(p2["cfg"])
        # Stage 3: leak(v) for the configured mode, and a.
        leaked = Signal(signed(width), name="leak_v")
        m.d.comb += leaked.eq(p2["v"])
        with m.Switch(cfg2.leak):
            if "mult" in self.leak_modes:
                with m.Case(LEAK_CODE["mult"]):
                    m.d.comb += leaked.eq(p2["prod"])
            if "shift" in self.leak_modes:
                with m.Case(LEAK_CODE["shift"]):
                    m.d.comb += leaked.eq(p2["shifted"])
        a = Signal(signed(a_width), name="a")
        m.d.comb += a.eq(p2["s"] + p2["bias"])
        p3 = self._stage(
            m,
            "p3",
            {"leaked": leaked, "a": a, "theta": p2["theta"], "valid": p2["valid"],
             "fire": cfg2.fire, "reset": cfg2.reset},
        )  # fmt: skip
        # Stage 4: u = sat(leak(v) + a).
        u_next = saturated(m, p3["leaked"] + p3["a"], self.v_bits, name="u_next")
        p4 = self._stage(
            m,
            "p4",
            {"u": u_next, "theta": p3["theta"], "valid": p3["valid"], "fire": p3["fire"],
             "reset": p3["reset"]},
        )  # fmt: skip
        # Stage 5: fire and reset, into the output registers.
        u, theta = p4["u"], p4["theta"]
        fires = p4["valid"] & (p4["fire"] == FIRE_CODE["lif"]) & (u >= theta)
        v_next = Signal(signed(self.v_bits), name="v_reset")
        m.d.comb += v_next.eq(u)
        with m.If(fires):
            with m.Switch(p4["reset"]):
                with m.Case(RESET_CODE["sub"]):
                    m.d.comb += v_next.eq(u - theta)
                with m.Case(RESET_CODE["zero"]):
                    m.d.comb += v_next.eq(0)
        p5 = self._stage(m, "p5", {"v_next": v_next, "spike": fires})
        m.d.comb += [self.spike.eq(p5["spike"]), self.v_next.eq(p5["v_next"])]
        return m


def max_theta(v_bits: int) -> int:
    """The largest threshold docs/semantics.md allows for ``v_bits``."""
    return signed_range(v_bits)[1]


__all__ = [
    "FIRE_CODE",
    "LEAK_CODE",
    "RESET_CODE",
    "NeuronUpdate",
    "max_theta",
    "neuron_config_layout",
]
