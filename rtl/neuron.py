"""The per-lane neuron update of SPEC section 2, as a two-stage pipelined Amaranth component.

Stage 1 (registered on ``en``): ``leak(v)`` and ``a = (s >> input_shift) + bias``.
Stage 2 (combinational from the stage-1 registers): ``u = sat(leak(v) + a)``, fire and reset.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from rtl.saturate import saturated
from sim.semantics import FIRE_MODES, LEAK_MODES, RESET_MODES, signed_range

#: Mode register codes: the index of the mode's name in ``sim.semantics``' tuples.
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
    """One lane of the step update: ``(s, v, bias, theta) -> (v_next, spike)`` one cycle later.

    Inputs are captured when ``en`` is high; outputs are combinational from those registers.
    ``leak_modes`` lists the leak modes built in hardware; a mode left out behaves as ``none``.
    """

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

    def elaborate(self, platform):
        m = Module()
        leaked = self._stage1(m)
        u = saturated(m, leaked["leaked"] + leaked["a"], self.v_bits, name="u")
        lif = leaked["fire"] == FIRE_CODE["lif"]
        fires = leaked["valid"] & lif & (u >= leaked["theta"])
        m.d.comb += self.spike.eq(fires)
        m.d.comb += self.v_next.eq(u)
        with m.If(fires):
            with m.Switch(leaked["reset"]):
                with m.Case(RESET_CODE["sub"]):
                    m.d.comb += self.v_next.eq(u - leaked["theta"])
                with m.Case(RESET_CODE["zero"]):
                    m.d.comb += self.v_next.eq(0)
        return m

    def _leak(self, m: Module):
        """``leak(v)`` for the configured mode, exact (wide enough for any ``lam``)."""
        cfg, v = self.cfg, self.v
        width = self.v_bits + self.max_frac + 2
        out = Signal(signed(width), name="leak_v")
        m.d.comb += out.eq(v)
        with m.Switch(cfg.leak):
            if "mult" in self.leak_modes:
                with m.Case(LEAK_CODE["mult"]):
                    m.d.comb += out.eq((v * cfg.lam) >> cfg.frac)
            if "shift" in self.leak_modes:
                with m.Case(LEAK_CODE["shift"]):
                    m.d.comb += out.eq(v - (v >> cfg.k))
        return out

    def _stage1(self, m: Module) -> dict[str, Signal]:
        """Registers holding ``leak(v)``, ``a``, ``theta`` and the modes for stage 2."""
        leak_v = self._leak(m)
        a_width = max(self.acc_bits, self.bias_bits) + 1
        regs = {
            "leaked": Signal(signed(leak_v.shape().width), name="s2_leaked"),
            "a": Signal(signed(a_width), name="s2_a"),
            "theta": Signal(signed(self.v_bits), name="s2_theta"),
            "valid": Signal(name="s2_valid"),
            "fire": Signal(1, name="s2_fire"),
            "reset": Signal(2, name="s2_reset"),
        }
        with m.If(self.en):
            m.d.sync += [
                regs["leaked"].eq(leak_v),
                regs["a"].eq((self.s >> self.cfg.input_shift) + self.bias),
                regs["theta"].eq(self.theta),
                regs["valid"].eq(self.valid),
                regs["fire"].eq(self.cfg.fire),
                regs["reset"].eq(self.cfg.reset),
            ]
        return regs


def max_theta(v_bits: int) -> int:
    """The largest threshold SPEC section 2 allows for ``v_bits``."""
    return signed_range(v_bits)[1]


__all__ = [
    "FIRE_CODE",
    "LEAK_CODE",
    "RESET_CODE",
    "NeuronUpdate",
    "max_theta",
    "neuron_config_layout",
]
