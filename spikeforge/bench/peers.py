"""The benchmark networks written with the peer SNN libraries: snnTorch, SpikingJelly, Norse.

Every library gets the same two networks, with no biases and the same layer order, so the
synaptic work is identical and only the neuron and the framework differ:

* ``mlp``: 784-512-512-10 (LIF after each hidden layer);
* ``conv``: 1x28x28 -> conv32 (3x3, pad 1) -> LIF -> maxpool 2 -> conv64 -> LIF -> maxpool 2
  -> linear 10.

The input is static (direct encoding) and the output layer never spikes: the logits are the
output layer's current summed over the ``T`` steps (spikeforge's accumulator), so the loss is
the same everywhere. Each library is written the way its documentation writes a network:

* snnTorch: ``snn.Leaky`` (trainable beta and threshold, subtract reset) in a Python time loop;
* SpikingJelly: ``activation_based`` layers in multi-step mode (``step_mode='m'``) around
  ``neuron.LIFNode`` (soft reset, ``decay_input=False``), input ``[T, N, ...]``; on the CPU its
  LIF runs its own multi-step operator with a hand-written backward;
* Norse: ``LIFBoxCell`` (the current-free LIF, Norse's closest neuron) in a time loop.

``hoist=True`` computes the first layer's current once and feeds it at every step (what
spikeforge's ``SNN`` does for direct input); ``False`` applies the first layer at every step as
the libraries' tutorials do. Imports are lazy: a library that is not installed is reported by
``peer_status`` with the import error, never dropped silently.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import torch
from torch import Tensor, nn

PEERS: tuple[str, ...] = ("snntorch", "spikingjelly", "norse")
WORKLOADS: tuple[str, ...] = ("mlp", "conv")
LEAK = 0.9
THRESHOLD = 1.0


def peer_status() -> dict[str, dict[str, str]]:
    """``{name: {"version": ...}}`` or ``{name: {"error": why it cannot be imported}}``."""
    modules = {
        "snntorch": "snntorch",
        "spikingjelly": "spikingjelly.activation_based.neuron",
        "norse": "norse.torch",
    }
    status: dict[str, dict[str, str]] = {}
    for name, module in modules.items():
        try:
            importlib.import_module(module)
            from importlib.metadata import version

            status[name] = {"version": version(name)}
        except Exception as error:  # the report carries the reason
            status[name] = {"error": f"{type(error).__name__}: {error}"}
    return status


def _synapses(workload: str) -> tuple[list[nn.Module], list[Callable[[Tensor], Tensor]]]:
    """``(synapses, after)``: the weight layers, and what follows each hidden neuron layer."""
    if workload == "mlp":
        syn = [nn.Linear(784, 512, bias=False), nn.Linear(512, 512, bias=False)]
        syn.append(nn.Linear(512, 10, bias=False))
        return syn, [nn.Identity(), nn.Identity()]
    if workload == "conv":
        syn = [
            nn.Conv2d(1, 32, 3, padding=1, bias=False),
            nn.Conv2d(32, 64, 3, padding=1, bias=False),
            nn.Linear(64 * 7 * 7, 10, bias=False),
        ]
        return syn, [nn.MaxPool2d(2), nn.MaxPool2d(2)]
    raise ValueError(f"unknown workload {workload!r}; expected one of {list(WORKLOADS)}")


def input_shape(workload: str) -> tuple[int, ...]:
    """One sample's input shape for ``workload``."""
    return (784,) if workload == "mlp" else (1, 28, 28)


class _LoopNet(nn.Module):
    """Single-step neurons in a Python time loop (snnTorch and Norse style)."""

    def __init__(self, workload: str, steps: int, hoist: bool, neurons: list[nn.Module]) -> None:
        super().__init__()
        syn, after = _synapses(workload)
        self.syn = nn.ModuleList(syn)
        self.after = nn.ModuleList(after)
        self.neurons = nn.ModuleList(neurons)
        self.steps = steps
        self.hoist = hoist

    def step(self, index: int, current: Tensor, state: object) -> tuple[Tensor, object]:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        states: list[object] = [None] * len(self.neurons)
        first = self.syn[0](x) if self.hoist else None
        logits = 0.0
        for _ in range(self.steps):
            h = first if first is not None else self.syn[0](x)
            for i in range(len(self.neurons)):
                if i > 0:
                    h = self.syn[i](h)
                spikes, states[i] = self.step(i, h, states[i])
                h = self.after[i](spikes)
            logits = logits + self.syn[-1](h.flatten(1))
        return logits


class _SnnTorchNet(_LoopNet):
    def step(self, index: int, current: Tensor, state: object) -> tuple[Tensor, object]:
        neuron = self.neurons[index]
        mem = neuron.reset_mem() if state is None else state
        return neuron(current, mem)


class _NorseNet(_LoopNet):
    def step(self, index: int, current: Tensor, state: object) -> tuple[Tensor, object]:
        return self.neurons[index](current, state)


class _SpikingJellyNet(nn.Module):
    """``activation_based`` layers in multi-step mode; the state is reset after each call."""

    def __init__(self, workload: str, steps: int, hoist: bool) -> None:
        super().__init__()
        from spikingjelly.activation_based import functional, layer, neuron

        self._functional = functional
        syn, _ = _synapses(workload)
        tau = 1.0 / (1.0 - LEAK)

        def lif() -> nn.Module:
            return neuron.LIFNode(
                tau=tau, decay_input=False, v_threshold=THRESHOLD, v_reset=None, step_mode="m"
            )

        if workload == "mlp":
            first = layer.Linear(784, 512, bias=False, step_mode="m")
            rest = [lif(), layer.Linear(512, 512, bias=False, step_mode="m"), lif()]
        else:
            first = layer.Conv2d(1, 32, 3, padding=1, bias=False, step_mode="m")
            rest = [
                lif(),
                layer.MaxPool2d(2, step_mode="m"),
                layer.Conv2d(32, 64, 3, padding=1, bias=False, step_mode="m"),
                lif(),
                layer.MaxPool2d(2, step_mode="m"),
            ]
        rest += [layer.Flatten(step_mode="m"), layer.Linear(syn[-1].in_features, 10, bias=False)]
        rest[-1].step_mode = "m"
        self.first = first
        self.rest = nn.Sequential(*rest)
        self.steps = steps
        self.hoist = hoist

    def forward(self, x: Tensor) -> Tensor:
        if self.hoist:
            self.first.step_mode = "s"
            cur = self.first(x)
            seq = cur.unsqueeze(0).expand(self.steps, *cur.shape)
        else:
            self.first.step_mode = "m"
            seq = self.first(x.unsqueeze(0).repeat(self.steps, *[1] * x.dim()))
        out = self.rest(seq).sum(0)
        self._functional.reset_net(self)
        return out


def build_peer(name: str, workload: str, steps: int, hoist: bool = False) -> nn.Module:
    """The ``workload`` network in library ``name``: ``model(x [N, *shape]) -> logits``."""
    _synapses(workload)  # validates the workload name
    if name == "snntorch":
        import snntorch as snn

        neurons = [
            snn.Leaky(
                beta=LEAK,
                threshold=THRESHOLD,
                learn_beta=True,
                learn_threshold=True,
                reset_mechanism="subtract",
            )
            for _ in range(2)
        ]
        return _SnnTorchNet(workload, steps, hoist, neurons)
    if name == "spikingjelly":
        return _SpikingJellyNet(workload, steps, hoist)
    if name == "norse":
        from norse.torch import LIFBoxCell, LIFBoxParameters

        p = LIFBoxParameters(tau_mem_inv=torch.as_tensor((1.0 - LEAK) / 1e-3))
        return _NorseNet(workload, steps, hoist, [LIFBoxCell(p) for _ in range(2)])
    raise ValueError(f"unknown peer {name!r}; expected one of {list(PEERS)}")
