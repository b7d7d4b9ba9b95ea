"""The golden integer model (SPEC 3.2): runs a bundle on a batch, exactly as SPEC section 2 says.

Every cross-check in spikeforge compares against ``run``. The layers are evaluated one after
another over all time steps (a layer's input train is complete before the next layer starts, as
there is no feedback), so each layer's synaptic input for the whole batch and every step is one
matrix product. That product runs in float32 or float64 BLAS when every partial sum is an integer
the float type represents exactly (checked from the bundle), and in int64 otherwise.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from sim.bundle import Bundle, Layer
from sim.semantics import neuron_step

#: Largest magnitude every integer up to which float32 / float64 represent exactly.
EXACT_LIMITS = (("float32", 2**24), ("float64", 2**53), ("int64", 2**63 - 1))

#: Samples per chunk; bounds the memory of the im2col buffers and spike trains.
DEFAULT_CHUNK = 512


class InputError(ValueError):
    """The input array does not fit the bundle's input specification."""


@dataclass
class LayerCounters:
    """Operation counts of one layer over a whole run (all samples, all steps).

    ``synaptic_ops`` counts input events times their non-zero fan-out weights; those with a 0/1
    spike input are ``accumulate_ops`` (additions), those with a multi-bit input code ``mac_ops``.
    """

    input_events: int = 0
    synaptic_ops: int = 0
    accumulate_ops: int = 0
    mac_ops: int = 0
    output_spikes: int = 0
    neuron_updates: int = 0

    def add(self, other: LayerCounters) -> None:
        for key, value in asdict(other).items():
            setattr(self, key, getattr(self, key) + value)


@dataclass
class GoldenResult:
    """Per-layer spikes ``[N,T,*out_shape]``, output potentials, predictions and counters."""

    spikes: dict[str, np.ndarray]
    v_out: np.ndarray
    pred: np.ndarray
    counters: dict[str, LayerCounters]
    engines: dict[str, str]
    potentials: dict[str, np.ndarray] | None = field(default=None)

    def result_arrays(self) -> dict[str, np.ndarray]:
        """The arrays of SPEC 3.3's RESULT.npz: ``pred``, ``v_out``, ``spikes.<layer>``."""
        arrays = {"pred": self.pred, "v_out": self.v_out}
        arrays |= {f"spikes.{name}": s for name, s in self.spikes.items()}
        return arrays


# --------------------------------------------------------------------------------------------
# input


def check_input(bundle: Bundle, x: np.ndarray) -> np.ndarray:
    """Validate ``x`` against the bundle's input spec; returns it as int64.

    ``direct``: integer codes ``[N, *shape]``; ``spikes``: 0/1 trains ``[N, T, *shape]``.
    """
    spec = bundle.input
    x = np.asarray(x)
    if spec.encoding == "spikes":
        expected = f"[N, T={bundle.timesteps}, {', '.join(map(str, spec.shape))}]"
        shape_ok = x.ndim == 2 + len(spec.shape) and x.shape[1:] == (bundle.timesteps, *spec.shape)
        dtype_ok = x.dtype.kind in "iub"
    else:
        expected = f"[N, {', '.join(map(str, spec.shape))}]"
        shape_ok = x.ndim == 1 + len(spec.shape) and x.shape[1:] == spec.shape
        dtype_ok = x.dtype.kind in "iu"
    if not dtype_ok:
        raise InputError(f"input must hold integers, got dtype {x.dtype}")
    if not shape_ok:
        raise InputError(f"input has shape {list(x.shape)}; the bundle expects {expected}")
    if x.shape[0] == 0:
        raise InputError("input holds no samples (N = 0)")
    lo, hi = spec.code_range
    x_min, x_max = int(x.min()), int(x.max())
    if x_min < lo or x_max > hi:
        what = (
            "a spike train must be 0/1"
            if spec.encoding == "spikes"
            else (f"{spec.bits}-bit {'signed' if spec.signed else 'unsigned'} codes")
        )
        raise InputError(f"input values span [{x_min}, {x_max}], outside [{lo}, {hi}] ({what})")
    return x.astype(np.int64)


# --------------------------------------------------------------------------------------------
# synaptic input


def sum_bound(weight: np.ndarray, max_abs_input: int) -> int:
    """Largest |partial sum| any output can reach with ``weight`` and inputs up to the bound."""
    per_output = np.abs(weight).reshape(weight.shape[0], -1).sum(axis=1)
    return int(per_output.max()) * int(max_abs_input)


def exact_engine(bound: int) -> str:
    """The cheapest dtype whose products and sums are exact for partial sums up to ``bound``."""
    for name, limit in EXACT_LIMITS:
        if bound <= limit:
            return name
    raise OverflowError(f"partial sums up to {bound} exceed int64; no exact engine")


def state_dtype(layer: Layer, bound: int) -> type[np.signedinteger]:
    """int32 when every value of the neuron update (``v * lam``, ``leak(v) + a``) fits, else int64.

    The update is dtype-preserving, so a narrower state only makes it faster, never different.
    """
    v_max = 1 << (layer.v_bits - 1)
    product = v_max * (layer.leak.lam if layer.leak.mode == "mult" else 1)
    a_max = (bound >> layer.input_shift) + int(np.abs(layer.bias_vector()).max())
    return np.int32 if max(product, v_max + a_max + 1) < 2**31 else np.int64


def _conv_columns(x: np.ndarray, layer: Layer) -> np.ndarray:
    """im2col: ``[B, C, H, W]`` -> ``[B, Ho, Wo, C*kh*kw]`` for ``layer``'s stride and padding."""
    kh, kw = layer.weight.shape[2:]
    (ph, pw), (sh, sw) = layer.padding, layer.stride
    padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    windows = sliding_window_view(padded, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    b, c, ho, wo = windows.shape[:4]
    return windows.transpose(0, 2, 3, 1, 4, 5).reshape(b, ho, wo, c * kh * kw)


def synaptic_input(
    layer: Layer,
    x: np.ndarray,
    engine: str,
    weight: np.ndarray | None = None,
    out_dtype: type[np.signedinteger] = np.int64,
) -> np.ndarray:
    """Exact ``s = W·x`` for a batch ``[B, *layer.in_shape]``; returns int64 ``[B, n_out]``.

    ``weight`` overrides the layer's weights (used to count non-zero fan-out).
    """
    w = layer.weight if weight is None else weight
    dtype = np.dtype(engine)
    batch = x.shape[0]
    if layer.kind == "linear":
        s = x.reshape(batch, -1).astype(dtype) @ w.astype(dtype).T
    else:
        cols = _conv_columns(x.reshape(batch, *layer.in_shape).astype(dtype), layer)
        s = cols @ w.reshape(w.shape[0], -1).astype(dtype).T  # [B, Ho, Wo, O]
        s = s.transpose(0, 3, 1, 2)
    return s.reshape(batch, -1).astype(out_dtype)


def _synaptic_ops(layer: Layer, event_counts: np.ndarray) -> int:
    """Σ over input events of their non-zero fan-out, from per-position event counts."""
    if layer.kind == "linear":
        fan_out = np.count_nonzero(layer.weight, axis=0).astype(np.int64)
        return int(event_counts.reshape(-1).astype(np.int64) @ fan_out)
    nonzero = (layer.weight != 0).astype(np.int64)
    bound = sum_bound(nonzero, int(event_counts.max()))
    s = synaptic_input(layer, event_counts[None], exact_engine(bound), weight=nonzero)
    return int(s.sum())


# --------------------------------------------------------------------------------------------
# the model


def _run_layer(
    layer: Layer,
    x: np.ndarray,
    timesteps: int,
    static: bool,
    max_abs_input: int,
    record: bool,
    sums: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, str]:
    """One layer over all steps. ``x``: ``[N, *in]`` if ``static`` (same input every step) else
    ``[N, T, *in]``. Returns spikes ``[N,T,n_out]``, final v ``[N,n_out]``, potentials, engine.
    ``sums`` (``[N, n_out]`` or ``[N, T, n_out]``) replaces the synaptic input (engine "given")."""
    n = x.shape[0]
    flat = x if static else x.reshape(n * timesteps, *layer.in_shape)
    bound = sum_bound(layer.weight, max_abs_input)
    if sums is not None:
        bound = max(bound, int(np.abs(sums).max(initial=0)))
    engine, dtype = exact_engine(bound), state_dtype(layer, bound)
    if sums is None:
        s = synaptic_input(layer, flat, engine, out_dtype=dtype if bound < 2**31 else np.int64)
    else:
        s = sums.reshape(flat.shape[0], -1).astype(dtype if bound < 2**31 else np.int64)
        engine = "given"
    a = (s >> layer.input_shift) + layer.bias_vector().astype(dtype)
    a = a.astype(dtype, copy=False)
    if not static:
        a = a.reshape(n, timesteps, -1)
    theta = layer.theta_vector().astype(dtype)
    v = np.zeros((n, layer.n_out), dtype=dtype)
    spikes = np.zeros((n, timesteps, layer.n_out), dtype=np.uint8)
    potentials = np.zeros((n, timesteps, layer.n_out), dtype=np.int64) if record else None
    for t in range(timesteps):
        v, spikes[:, t] = neuron_step(
            v, a if static else a[:, t], theta, layer.leak, layer.reset, layer.fire, layer.v_bits
        )
        if potentials is not None:
            potentials[:, t] = v
    return spikes, v, potentials, engine


def _run_chunk(bundle: Bundle, x: np.ndarray, record: bool, first_sums: np.ndarray | None):
    t_steps = bundle.timesteps
    static = bundle.input.encoding == "direct"
    lo, hi = bundle.input.code_range
    max_abs = max(abs(lo), abs(hi))
    layer_input, multibit = x, static and bundle.input.bits > 1
    spikes, potentials, counters, engines = {}, {}, {}, {}
    v = None
    for layer in bundle.layers:
        events = (layer_input != 0).reshape(-1, *layer.in_shape).sum(axis=0)
        if static:
            events = events * t_steps
        syn_ops = _synaptic_ops(layer, events)
        out, v, pot, engines[layer.name] = _run_layer(
            layer, layer_input, t_steps, static, max_abs, record, first_sums
        )
        counters[layer.name] = LayerCounters(
            input_events=int(events.sum()),
            synaptic_ops=syn_ops,
            accumulate_ops=0 if multibit else syn_ops,
            mac_ops=syn_ops if multibit else 0,
            output_spikes=int(out.sum()),
            neuron_updates=out.size,
        )
        spikes[layer.name] = out.reshape(x.shape[0], t_steps, *layer.out_shape)
        if pot is not None:
            potentials[layer.name] = pot.reshape(x.shape[0], t_steps, *layer.out_shape)
        layer_input, static, multibit, max_abs, first_sums = out, False, False, 1, None
    return spikes, v, potentials, counters, engines


def run(
    bundle: Bundle,
    x: np.ndarray,
    *,
    record_potentials: bool = False,
    chunk: int = DEFAULT_CHUNK,
    first_layer_sums: np.ndarray | None = None,
) -> GoldenResult:
    """Run ``bundle`` on inputs ``x`` (see ``check_input``); vectorised over the batch.

    With ``record_potentials``, ``potentials[layer]`` holds every neuron's ``v`` at the end of
    every step ``[N,T,*out_shape]`` (the values a hardware read port shows after each TICK).
    ``first_layer_sums`` replaces layer 1's synaptic input ``s`` (e.g. the PIM model's): integers
    ``[N, n_out]`` for ``direct`` encoding (the same every step), ``[N, T, n_out]`` for ``spikes``.
    """
    x = check_input(bundle, x)
    if first_layer_sums is not None:
        first_layer_sums = _check_sums(bundle, x, first_layer_sums)
    parts = [
        _run_chunk(
            bundle,
            x[i : i + chunk],
            record_potentials,
            None if first_layer_sums is None else first_layer_sums[i : i + chunk],
        )
        for i in range(0, x.shape[0], chunk)
    ]
    names = [layer.name for layer in bundle.layers]
    spikes = {name: np.concatenate([p[0][name] for p in parts]) for name in names}
    v_out = np.concatenate([p[1] for p in parts])
    potentials = (
        {name: np.concatenate([p[2][name] for p in parts]) for name in names}
        if record_potentials
        else None
    )
    counters = {name: LayerCounters() for name in names}
    for part in parts:
        for name in names:
            counters[name].add(part[3][name])
    return GoldenResult(
        spikes=spikes,
        v_out=v_out,
        pred=np.argmax(v_out, axis=1),
        counters=counters,
        engines=parts[0][4],
        potentials=potentials,
    )


def _check_sums(bundle: Bundle, x: np.ndarray, sums: np.ndarray) -> np.ndarray:
    """``first_layer_sums`` as int64, after checking its shape and dtype against the input."""
    sums = np.asarray(sums)
    n_out, static = bundle.layers[0].n_out, bundle.input.encoding == "direct"
    shape = (x.shape[0], n_out) if static else (x.shape[0], bundle.timesteps, n_out)
    if sums.shape != shape or sums.dtype.kind not in "iu":
        raise InputError(
            f"first_layer_sums must be integers of shape {list(shape)}, got {sums.dtype} "
            f"{list(sums.shape)}"
        )
    return sums.astype(np.int64)


def accuracy(result: GoldenResult, labels: np.ndarray) -> float:
    """Fraction of predictions equal to ``labels``."""
    return float(np.mean(result.pred == np.asarray(labels))) if len(labels) else math.nan
