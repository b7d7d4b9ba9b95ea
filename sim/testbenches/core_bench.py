"""Drive one ``spikeforge.rtl.cores.core.Core`` through a case from ``core_cases``, in any
simulator.

The driver is written against ``Pins`` (set/get by port name, settle, next cycle), so the same
code runs under cocotb (Verilator, Icarus) and under Amaranth's simulator. Each cycle it drives
the inputs right after the falling edge, lets them settle, and samples both handshakes before the
rising edge; every out event, read-back value and (in contract cases) every event's cycle cost is
compared, and a mismatch fails with the case, step and neuron.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any, Protocol

from amaranth.hdl import Value
from amaranth.sim import Simulator
from spikeforge.rtl.cores.core import CLEAR_LATENCY, CoreParams, Op, Reg, Region
from spikeforge.sim.testbenches.harness import PERIOD_NS, to_signed

INPUTS = ("i.valid", "i.payload", "o.ready", "cfg.valid", "cfg.write", "cfg.addr", "cfg.wdata")
OP_NAMES = {op.value: op.name for op in Op}


class Pins(Protocol):
    """Access to one core's ports (names like ``i.valid``, ``cfg.rdata``)."""

    def set(self, name: str, value: int) -> None: ...

    def get(self, name: str) -> int: ...

    async def settle(self) -> None: ...

    async def next_cycle(self) -> None: ...


class CaseFailed(AssertionError):
    """The core disagreed with the reference."""


class CoreDriver:
    """Runs cases on one core; ``counts`` totals what was compared."""

    def __init__(self, pins: Pins, params: CoreParams, name: str = "core"):
        self.pins, self.params, self.name = pins, params, name
        self.cycle = 0
        self.counts: Counter[str] = Counter()
        self._last: dict[str, int] = {}

    # -- one clock cycle ------------------------------------------------------------------

    def _drive(self, name: str, value: int) -> None:
        if self._last.get(name) != value:
            self.pins.set(name, value)
            self._last[name] = value

    def reset_inputs(self) -> None:
        for name in INPUTS:
            self.pins.set(name, 0)
            self._last[name] = 0

    async def _cycle(self, event: int | None, cfg: tuple[int, int, int] | None) -> dict[str, Any]:
        """One cycle with ``event`` (a payload word) and ``cfg`` ((write, addr, wdata)) offered."""
        pins = self.pins
        self._drive("i.valid", int(event is not None))
        if event is not None:
            self._drive("i.payload", event)
        self._drive("cfg.valid", int(cfg is not None))
        if cfg is not None:
            self._drive("cfg.write", cfg[0])
            self._drive("cfg.addr", cfg[1])
            self._drive("cfg.wdata", cfg[2])
        self._drive("o.ready", int(self.rng.random() >= self.backpressure_p))
        await pins.settle()
        seen: dict[str, Any] = {
            "in": event is not None and pins.get("i.ready") == 1,
            "cfg": cfg is not None and pins.get("cfg.ready") == 1,
            "rdata": pins.get("cfg.rdata") if pins.get("cfg.rvalid") else None,
        }
        if self._last["o.ready"] and pins.get("o.valid"):
            self._receive(self.params.unpack_out(pins.get("o.payload")))
        if seen["in"] or seen["cfg"]:
            self.accepts.append((self.cycle, seen["in"]))
        await pins.next_cycle()
        self.cycle += 1
        return seen

    def _receive(self, got: tuple[int, int]) -> None:
        k = len(self.received)
        if k >= len(self.expected):
            self._fail(f"unexpected out event {self._fmt(got)}")
        want = tuple(self.expected[k])
        if got != want:
            self._fail(f"out event #{k}: got {self._fmt(got)}, expected {self._fmt(want)}")
        self.received.append(got)
        self.counts[f"out_{OP_NAMES[got[0]].lower()}"] += 1
        self.counts["out_events_compared"] += 1
        if got[0] == Op.TICK.value:
            self.step += 1

    def _fmt(self, ev: tuple[int, int]) -> str:
        op = OP_NAMES[ev[0]]
        return f"{op}({ev[1]})" if op == "SPIKE" else op

    def _fail(self, message: str) -> None:
        raise CaseFailed(f"{self.name} {self.label} step {self.step} cycle {self.cycle}: {message}")

    # -- phases ---------------------------------------------------------------------------

    async def run_case(self, case: dict[str, Any], label: str) -> None:
        """Run every phase of ``case``; raise ``CaseFailed`` at the first difference."""
        self.label, self.step = label, 0
        self.rng = random.Random(case["seed"])
        self.gap_p, self.backpressure_p = case["gap_p"], case["backpressure_p"]
        self.expected: list[list[int]] = []
        self.received: list[tuple[int, int]] = []
        self.accepts: list[tuple[int, bool]] = []
        costs: list[int] = []
        for phase in case["phases"]:
            if "writes" in phase:
                await self._writes(phase["writes"])
            elif "events" in phase:
                costs += self._costs(phase["events"], phase["expect"])
                await self._events(phase["events"], phase["expect"])
            else:
                await self._reads(phase["reads"])
        if case.get("contract"):
            await self._check_contract(costs)
        for _ in range(4):  # nothing may trail the last expected event
            await self._cycle(None, None)
        self.counts["cases"] += 1

    def _limit(self, n: int) -> int:
        return 200 + 4 * n * (self.params.groups + 8 + self.params.lanes)

    async def _events(self, events: list[list[int]], expect: list[list[int]]) -> None:
        self.expected += expect
        pending = [self.params.pack_in(*ev) for ev in events]
        offered: int | None = None
        start = self.cycle
        while pending or offered is not None or len(self.received) < len(self.expected):
            if offered is None and pending and self.rng.random() >= self.gap_p:
                offered = pending.pop(0)
            seen = await self._cycle(offered, None)
            if seen["in"]:
                offered = None
                self.counts["in_events_sent"] += 1
            if self.cycle - start > self._limit(len(events) + len(expect)):
                self._fail(f"timeout: {len(pending)} events unsent, out {len(self.received)}")

    async def _writes(self, writes: list[list[int]]) -> None:
        for addr, data in writes:
            while not (await self._cycle(None, (1, addr, data)))["cfg"]:
                pass
        self.counts["cfg_writes"] += len(writes)

    async def _reads(self, reads: list[list[Any]]) -> list[int]:
        """Issue reads back to back; compare each answer with its expected value."""
        answers: list[int] = []
        issued, start = 0, self.cycle
        while len(answers) < len(reads):
            cfg = (0, reads[issued][0], 0) if issued < len(reads) else None
            seen = await self._cycle(None, cfg)
            issued += int(seen["cfg"])
            if seen["rdata"] is not None:
                answers.append(to_signed(seen["rdata"], 32))
            if self.cycle - start > self._limit(len(reads)):
                self._fail("timeout waiting for read data")
        for (_, want, what), got in zip(reads, answers, strict=True):
            if got != want:
                self._fail(f"read {what}: got {got}, expected {want}")
        self.counts["reads_compared"] += len(reads)
        self.counts["v_compared"] += sum(str(r[2]).startswith("v[") for r in reads)
        return answers

    # -- cycle contract -------------------------------------------------------------------

    #: Whether a burst ending in a SPIKE or LOAD costs one more cycle (the engine drains before
    #: the next access, a configuration access, is taken).
    drains_after_burst = False

    def _spike_cost(self, index: int) -> int:
        return self.params.groups

    def _clear_cost(self) -> int:
        return self.params.groups + CLEAR_LATENCY

    def _costs(self, events: list[list[int]], expect: list[list[int]]) -> list[int]:
        """The contract's cycle cost of each event, from the spikes each TICK emits."""
        p, costs, out = self.params, [], list(expect)
        for op, index, _ in events:
            if op == Op.TICK.value:
                spikes = []
                while out[0][0] != Op.TICK.value:
                    spikes.append(out.pop(0)[1])
                out.pop(0)
                per_group = Counter(n // p.lanes for n in spikes)
                costs.append(p.tick_cycles(list(per_group.values())))
            elif op == Op.CLEAR.value:
                out.pop(0)
                costs.append(self._clear_cost())
            else:
                costs.append(self._spike_cost(index) if op == Op.SPIKE.value else 1)
        if self.drains_after_burst and events and events[-1][0] in (Op.SPIKE.value, Op.LOAD.value):
            costs[-1] += 1
        return costs

    async def _check_contract(self, costs: list[int]) -> None:
        """Every event's interval to the next accepted access equals its cost; busy == sum."""
        p = self.params
        log = list(self.accepts)
        await self._reads([[p.addr(Region.CTRL, Reg.BUSY_CYCLES), sum(costs), "busy cycles"]])
        in_cycles = [(k, c) for k, (c, is_in) in enumerate(log) if is_in]
        if len(in_cycles) != len(costs):
            self._fail(f"{len(in_cycles)} events accepted, {len(costs)} sent")
        for n, ((k, cycle), cost) in enumerate(zip(in_cycles, costs, strict=True)):
            took = log[k + 1][0] - cycle
            if took != cost:
                self._fail(f"event #{n} took {took} cycles, the contract says {cost}")
        self.counts["contract_events"] += len(costs)


class AmaranthPins:
    """``Pins`` over an Amaranth testbench context and a core's ports (``ports.i.valid`` ...)."""

    def __init__(self, ctx: Any, ports: Any):
        self.ctx, self.ports = ctx, ports
        self._cache: dict[str, Any] = {}

    def _value(self, name: str) -> Any:
        if name not in self._cache:
            obj = self.ports
            for part in name.split("."):
                obj = getattr(obj, part)
            self._cache[name] = Value.cast(obj)
        return self._cache[name]

    def set(self, name: str, value: int) -> None:
        self.ctx.set(self._value(name), value)

    def get(self, name: str) -> int:
        return self.ctx.get(self._value(name))

    async def settle(self) -> None:
        return None

    async def next_cycle(self) -> None:
        await self.ctx.tick()


def simulate_cases(
    dut: Any, params: CoreParams, cases: list[dict[str, Any]], driver: type[CoreDriver] = CoreDriver
) -> Counter[str]:
    """Run ``cases`` in order on ``dut`` in Amaranth's simulator; the driver's counts."""
    counts: Counter[str] = Counter()

    async def bench(ctx: Any) -> None:
        run = driver(AmaranthPins(ctx, dut), params)
        run.reset_inputs()
        for k, case in enumerate(cases):
            await run.run_case(case, f"case {k}")
        counts.update(run.counts)

    sim = Simulator(dut)
    sim.add_clock(PERIOD_NS * 1e-9)
    sim.add_testbench(bench)
    sim.run()
    return counts
