"""The golden integer model: runs a bundle on a batch, exactly as docs/semantics.md says.

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
from spikeforge.sim.bundle import Bundle, Layer
from spikeforge.sim.semantics import neuron_step

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
        """The arrays of RESULT.npz (docs/bundle.md): ``pred``, ``v_out``, ``spikes.<layer>``."""
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
    return x.astype(np.int64, copy=False)


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


def conv_columns(x: np.ndarray, layer: Layer) -> np.ndarray:
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
        cols = conv_columns(x.reshape(batch, *layer.in_shape).astype(dtype), layer)
        s = cols @ w.reshape(w.shape[0], -1).astype(dtype).T  # [B, Ho, Wo, O]
        s = s.transpose(0, 3, 1, 2)
    return s.reshape(batch, -1).astype(out_dtype)


def _fan_out(layer: Layer) -> np.ndarray:
    """Non-zero weights per input (linear) or the 0/1 kernel of non-zero weights (conv), int64."""
    if layer.kind == "linear":
        return np.count_nonzero(layer.weight, axis=0).astype(np.int64)
    return (layer.weight != 0).astype(np.int64)


def _synaptic_ops(layer: Layer, event_counts: np.ndarray, fan_out: np.ndarray) -> int:
    """Σ over input events of their non-zero fan-out, from per-position event counts."""
    if layer.kind == "linear":
        return int(event_counts.reshape(-1).astype(np.int64) @ fan_out)
    bound = sum_bound(fan_out, int(event_counts.max()))
    s = synaptic_input(layer, event_counts[None], exact_engine(bound), weight=fan_out)
    return int(s.sum())


# --------------------------------------------------------------------------------------------
# the model


@dataclass(frozen=True)
class _LayerPlan:
    """What one layer's evaluation needs, computed once from the bundle.

    ``engine`` is the dtype of its matrix product (exact for the largest |s| its inputs can
    produce); ``sums`` the integer dtype of ``s`` and ``state`` that of ``a`` and ``v``;
    ``matrix`` the weights as ``[fan_in, n_out]`` in the engine dtype; ``bias`` is None when
    every bias is 0; ``fan_out`` is ``_fan_out(layer)``.
    """

    layer: Layer
    engine: str
    sums: type[np.signedinteger]
    state: type[np.signedinteger]
    matrix: np.ndarray
    theta: np.ndarray
    bias: np.ndarray | None
    fan_out: np.ndarray


def _kernel_rows(weight: np.ndarray) -> np.ndarray:
    """Weights as ``[n_out, fan_in]``; conv kernels in ``(kh, kw, C)`` order (for ``Model``)."""
    if weight.ndim == 4:
        weight = weight.transpose(0, 2, 3, 1)
    return weight.reshape(weight.shape[0], -1)


def _plan(layer: Layer, max_abs_input: int, extra_bound: int = 0) -> _LayerPlan:
    bound = max(sum_bound(layer.weight, max_abs_input), extra_bound)
    engine, state = exact_engine(bound), state_dtype(layer, bound)
    bias = layer.bias_vector()
    return _LayerPlan(
        layer=layer,
        engine=engine,
        sums=state if bound < 2**31 else np.int64,
        state=state,
        matrix=np.ascontiguousarray(_kernel_rows(layer.weight).T, engine),
        theta=layer.theta_vector().astype(state),
        bias=bias.astype(state) if bias.any() else None,
        fan_out=_fan_out(layer),
    )


class Model:
    """A bundle prepared for repeated runs: per-layer weights, bounds and engines computed once.

    ``Model(bundle).run(x)`` equals ``run(bundle, x)``; keep a ``Model`` when running the same
    bundle many times. It reuses its work buffers between runs, so one instance must not run
    in two threads at once. Do not modify the bundle's arrays while a ``Model`` holds them.
    """

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        lo, hi = bundle.input.code_range
        self.max_abs = [max(abs(lo), abs(hi))] + [1] * (len(bundle.layers) - 1)
        self.plans = [_plan(lay, m) for lay, m in zip(bundle.layers, self.max_abs, strict=True)]
        self._buffers: dict[str, np.ndarray] = {}

    def _buffer(self, key: str, shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
        """A work array reused between runs (fresh large arrays cost page faults)."""
        buf = self._buffers.get(key)
        if buf is None or buf.shape != shape or buf.dtype != np.dtype(dtype):
            buf = self._buffers[key] = np.empty(shape, dtype)
        return buf

    def run(
        self,
        x: np.ndarray,
        *,
        record_potentials: bool = False,
        chunk: int = DEFAULT_CHUNK,
        first_layer_sums: np.ndarray | None = None,
    ) -> GoldenResult:
        """See ``spikeforge.sim.golden.run``."""
        bundle = self.bundle
        x = check_input(bundle, x)
        given_plan = None
        if first_layer_sums is not None:
            first_layer_sums = _check_sums(bundle, x, first_layer_sums)
            given = int(np.abs(first_layer_sums).max(initial=0))
            given_plan = _plan(bundle.layers[0], self.max_abs[0], given)
        parts = [
            self._run_chunk(
                x[i : i + chunk],
                record_potentials,
                None if first_layer_sums is None else first_layer_sums[i : i + chunk],
                given_plan,
            )
            for i in range(0, x.shape[0], chunk)
        ]
        if len(parts) == 1:
            spikes, v_out, potentials, counters, engines = parts[0]
        else:
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
            engines = parts[0][4]
        return GoldenResult(
            spikes=spikes,
            v_out=v_out,
            pred=np.argmax(v_out, axis=1),
            counters=counters,
            engines=engines,
            potentials=potentials or None,
        )

    def _run_chunk(
        self,
        x: np.ndarray,
        record: bool,
        first_sums: np.ndarray | None,
        given_plan: _LayerPlan | None,
    ):
        """One chunk of samples; ``first_sums`` (with ``given_plan``, whose dtypes also hold
        them) replaces layer 1's synaptic input."""
        n, t_steps = x.shape[0], self.bundle.timesteps
        static = self.bundle.input.encoding == "direct"
        multibit = static and self.bundle.input.bits > 1
        layer_input = x
        spikes, potentials, counters, engines = {}, {}, {}, {}
        v = None
        for index, plan in enumerate(self.plans):
            layer = plan.layer
            flat = layer_input.reshape(n if static else n * t_steps, -1)
            events = np.count_nonzero(flat, axis=0).astype(np.int64)
            if static:
                events *= t_steps
            syn_ops = _synaptic_ops(layer, events.reshape(layer.in_shape), plan.fan_out)
            if given_plan is not None and index == 0:
                plan = given_plan
                a = first_sums.reshape(flat.shape[0], -1).astype(plan.sums)
                engines[layer.name] = "given"
            else:
                a = self._input_current(plan, flat, index)
                engines[layer.name] = plan.engine
            if plan.bias is not None or layer.input_shift:
                a = self._shift_and_bias(plan, a, index)
            out, v, pot = self._neuron_loop(plan, a, n, t_steps, static, record)
            counters[layer.name] = LayerCounters(
                input_events=int(events.sum()),
                synaptic_ops=syn_ops,
                accumulate_ops=0 if multibit else syn_ops,
                mac_ops=syn_ops if multibit else 0,
                output_spikes=int(np.count_nonzero(out)),
                neuron_updates=out.size,
            )
            spikes[layer.name] = out.reshape(n, t_steps, *layer.out_shape)
            if pot is not None:
                potentials[layer.name] = pot.reshape(n, t_steps, *layer.out_shape)
            layer_input, static, multibit = out, False, False
        return spikes, v.copy(), potentials, counters, engines

    def _input_current(self, plan: _LayerPlan, flat: np.ndarray, index: int) -> np.ndarray:
        """Exact ``s = W·x`` for every row of ``flat``, in the plan's ``sums`` dtype."""
        layer, rows = plan.layer, flat.shape[0]
        if plan.engine == "int64":
            return synaptic_input(layer, flat, plan.engine, out_dtype=plan.sums)
        if layer.kind == "conv2d":
            return self._conv_current(plan, flat, index)
        x_f = self._buffer(f"x{index}", flat.shape, plan.engine)
        np.copyto(x_f, flat, casting="unsafe")
        s_f = self._buffer(f"s{index}", (rows, layer.n_out), plan.engine)
        np.matmul(x_f, plan.matrix, out=s_f)
        s = self._buffer(f"s_int{index}", s_f.shape, plan.sums)
        np.copyto(s, s_f, casting="unsafe")  # exact: every value is an integer below the bound
        return s

    def _conv_current(self, plan: _LayerPlan, flat: np.ndarray, index: int) -> np.ndarray:
        """``_input_current`` of a conv layer: im2col into reused buffers, one matrix product.

        Channels-last (``[B, H, W, C]``) so every window row copies contiguous channels; the
        columns are ``(kh, kw, C)``-ordered like ``plan.matrix``; the result is ``[B, O, Ho, Wo]``.
        """
        layer, rows = plan.layer, flat.shape[0]
        c, h, w = layer.in_shape
        kh, kw = layer.weight.shape[2:]
        (ph, pw), (sh, sw) = layer.padding, layer.stride
        padded = self._buffer(f"p{index}", (rows, h + 2 * ph, w + 2 * pw, c), plan.engine)
        padded[:, :ph], padded[:, ph + h :] = 0, 0
        padded[:, :, :pw], padded[:, :, pw + w :] = 0, 0
        interior = flat.reshape(rows, c, h, w).transpose(0, 2, 3, 1)
        np.copyto(padded[:, ph : ph + h, pw : pw + w], interior, casting="unsafe")
        windows = sliding_window_view(padded, (kh, kw), axis=(1, 2))[:, ::sh, ::sw]
        ho, wo = windows.shape[1:3]
        cols = self._buffer(f"c{index}", (rows, ho, wo, kh, kw, c), plan.engine)
        np.copyto(cols, windows.transpose(0, 1, 2, 4, 5, 3))
        n_cols, out_c = rows * ho * wo, layer.weight.shape[0]
        s_f = self._buffer(f"s{index}", (n_cols, out_c), plan.engine)
        np.matmul(cols.reshape(n_cols, kh * kw * c), plan.matrix, out=s_f)
        s = self._buffer(f"s_int{index}", (rows, out_c, ho, wo), plan.sums)
        np.copyto(s, s_f.reshape(rows, ho, wo, out_c).transpose(0, 3, 1, 2), casting="unsafe")
        return s.reshape(rows, -1)

    def _shift_and_bias(self, plan: _LayerPlan, s: np.ndarray, index: int) -> np.ndarray:
        """``a = (s >> input_shift) + bias`` in the state dtype."""
        a = self._buffer(f"a{index}", s.shape, plan.state)
        np.right_shift(s, plan.layer.input_shift, out=a, casting="unsafe")
        if plan.bias is not None:
            np.add(a, plan.bias, out=a)
        return a

    def _neuron_loop(self, plan: _LayerPlan, a: np.ndarray, n: int, t_steps: int, static, record):
        """The neuron update for every step: spikes ``[N,T,n_out]``, final v, potentials."""
        layer = plan.layer
        if not static:
            a = a.reshape(n, t_steps, -1)
        v = self._buffer(f"v{layer.name}", (n, layer.n_out), plan.state)
        v.fill(0)
        spikes = np.zeros((n, t_steps, layer.n_out), dtype=np.uint8)
        potentials = np.empty((n, t_steps, layer.n_out), dtype=np.int64) if record else None
        bool_spikes = spikes.view(np.bool_)
        for t in range(t_steps):
            neuron_step(
                v,
                a if static else a[:, t],
                plan.theta,
                layer.leak,
                layer.reset,
                layer.fire,
                layer.v_bits,
                out=v,
                spike_out=bool_spikes[:, t],
            )
            if potentials is not None:
                potentials[:, t] = v
        return spikes, v, potentials


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
    For many runs of one bundle, keep a ``Model(bundle)`` instead.
    """
    return Model(bundle).run(
        x, record_potentials=record_potentials, chunk=chunk, first_layer_sums=first_layer_sums
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
