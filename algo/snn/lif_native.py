"""A C kernel for the fused LIF (``spikeforge.algo.snn.lif_fused``), built on first use by the
system C compiler.

The torch-only fused LIF issues about 5 tensor ops per step forward and 20 per step backward,
each a full pass over one step's neurons (and, with 2 threads, one OpenMP barrier). This kernel
does each direction in one pass: every thread takes a slice of the neurons and runs the whole
sequence over ``T`` for a block of them, keeping the potential and the running gradient in
registers / L1. It evaluates exactly the float expressions of ``spikeforge.algo.snn.lif_fused`` in
the same order (compiled with ``-ffp-contract=off``, no fast-math), so spikes, potentials and input
gradients are bit-identical to the torch paths (``tests/algo/test_lif_fused.py``).

Scope: scalar threshold and leak, the triangle surrogate (the default), float32 / float64 on the
CPU, every reset mode. ``lif_fused`` falls back to its torch loop for anything else.

Build: the source below is written to the cache directory (``$SPIKEFORGE_CACHE`` or
``~/.cache/spikeforge``) and compiled with ``$CC`` (default ``cc``) into a shared library named
by a hash of the source, flags, compiler and CPU, then loaded with ``ctypes`` (no torch headers,
no ninja: about a second). Set ``SPIKEFORGE_NATIVE_LIF=0`` to disable it; ``status()`` says
whether it loaded and why not.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import platform
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor

RESET_CODES = {"sub": 0, "zero": 1, "none": 2}
FLAGS = ("-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-shared", "-fPIC")
LIBS = ("-pthread",)

_TEMPLATE = r"""
/* ---- T_ = @T@ ---- */
typedef struct {
    const @T@ *cur; int64_t cts; @T@ *S; @T@ *V; @T@ *P; int64_t W; const @T@ *G; int64_t gts;
    @T@ *GI;
    int64_t T; int64_t M; int64_t lo; int64_t hi; @T@ th; @T@ lam; @T@ gamma; int reset;
    int detached; int failed; double acc[3];
} job_@S@;

/* one step of the forward pass for n neurons: u = v*lam + c ; s = u >= th ; v = reset(u, s) */
static inline __attribute__((always_inline)) void fwd_step_@S@(
        const @T@ *restrict c, @T@ *restrict u, @T@ *restrict s, @T@ *restrict v, int64_t n,
        const @T@ th, const @T@ lam, const int reset) {
    for (int64_t i = 0; i < n; i++) {
        @T@ x = v[i] * lam;
        x = x + c[i];
        @T@ sp = x >= th ? (@T@)1 : (@T@)0;
        u[i] = x;
        s[i] = sp;
        if (reset == 0) { @T@ r = sp * th; v[i] = x - r; }
        else if (reset == 1) { @T@ k = (@T@)1 - sp; v[i] = x * k; }
        else v[i] = x;
    }
}

/* one step of BPTT for n neurons, in the order of spikeforge.algo.snn.lif_fused's torch loop:
     deriv = gamma * max(1 - |u/th - 1|, 0)
     gs = g (first step, detached, none) | g - gv*th (sub) | g - gv*u (zero)
     d = (gs*deriv)/th ; gu = d (first) | (1-s)*gv + d (zero) | gv + d
     a_du += d*u ; a_gs += gv*s (sub, not first) ; a_lam += gu*v[t-1] (t > 0) ; gv = gu*lam */
static inline __attribute__((always_inline)) void bwd_step_@S@(
        const @T@ *restrict u, const @T@ *restrict up, const @T@ *restrict g,
        @T@ *restrict gi, @T@ *restrict gv, double *restrict a_du, double *restrict a_gs,
        double *restrict a_lam, int64_t n, const @T@ th, const @T@ lam, const @T@ gamma,
        const int reset, const int first, const int plain, const int prev) {
    for (int64_t i = 0; i < n; i++) {
        @T@ x = u[i];
        @T@ z = x / th;
        z = z - (@T@)1;
        @T@ a = z < 0 ? -z : z;
        @T@ dv = (@T@)1 - a;
        dv = dv < 0 ? (@T@)0 : dv;
        dv = dv * gamma;
        @T@ sp = x >= th ? (@T@)1 : (@T@)0;
        @T@ gs = g[i];
        if (!first && !plain) { @T@ q = gv[i] * (reset == 0 ? th : x); gs = gs - q; }
        @T@ d = gs * dv;
        d = d / th;
        @T@ gu;
        if (first) gu = d;
        else if (reset == 1) { @T@ k = (@T@)1 - sp; k = k * gv[i]; gu = k + d; }
        else gu = gv[i] + d;
        gi[i] = gu;
        @T@ du = d * x;
        a_du[i] += (double)du;
        if (reset == 0 && !first) { @T@ q = gv[i] * sp; a_gs[i] += (double)q; }
        if (prev) {
            @T@ xp = up[i], spp = xp >= th ? (@T@)1 : (@T@)0, vp;
            if (reset == 0) { @T@ r = spp * th; vp = xp - r; }
            else if (reset == 1) { @T@ k = (@T@)1 - spp; vp = xp * k; }
            else vp = xp;
            @T@ q = gu * vp;
            a_lam[i] += (double)q;
        }
        gv[i] = gu * lam;
    }
}

/* Work is split in units: one neuron, or with 2x2 max pooling (W > 0) one pair of input rows
   (2W neurons, all inside one [H, W] plane since H is even) feeding one pooled row of W/2. */
static int64_t unit_@S@(const job_@S@ *j) { return j->W ? 2 * j->W : 1; }
static int64_t block_units_@S@(const job_@S@ *j) {
    int64_t k = BLK / unit_@S@(j);
    return k < 1 ? 1 : k;
}

/* pooled[r, q] = max of the 2x2 window (spikes are 0/1: the window's OR) */
static inline void pool_@S@(const @T@ *restrict s, @T@ *restrict out, int64_t rows, int64_t W) {
    for (int64_t r = 0; r < rows; r++) {
        const @T@ *top = s + r * 2 * W, *bottom = top + W;
        for (int64_t q = 0; q < W / 2; q++) {
            @T@ a = top[2 * q] > top[2 * q + 1] ? top[2 * q] : top[2 * q + 1];
            @T@ b = bottom[2 * q] > bottom[2 * q + 1] ? bottom[2 * q] : bottom[2 * q + 1];
            out[r * (W / 2) + q] = a > b ? a : b;
        }
    }
}

/* dL/ds for one block from the pooled gradient: torch's max_pool2d sends each window's gradient
   to its first maximum in row-major order (the first spike, else the top-left neuron) */
static inline void unpool_@S@(const @T@ *restrict u, const @T@ *restrict gp, @T@ *restrict g,
                               int64_t rows, int64_t W, const @T@ th) {
    for (int64_t r = 0; r < rows; r++) {
        const int64_t o = r * 2 * W;
        for (int64_t q = 0; q < W / 2; q++) {
            const int64_t i0 = o + 2 * q, i1 = i0 + 1, i2 = i0 + W, i3 = i2 + 1;
            const int64_t at = u[i0] >= th ? i0 : u[i1] >= th ? i1 : u[i2] >= th ? i2
                             : u[i3] >= th ? i3 : i0;
            g[i0] = 0; g[i1] = 0; g[i2] = 0; g[i3] = 0;
            g[at] = gp[r * (W / 2) + q];
        }
    }
}

static void fwd_@S@(job_@S@ *j) {
    const int64_t unit = unit_@S@(j), per = block_units_@S@(j), nmax = per * unit;
    const @T@ th = j->th, lam = j->lam;
    @T@ *v = (@T@ *)malloc(sizeof(@T@) * 3 * (size_t)nmax);
    if (!v) { j->failed = 1; return; }
    @T@ *scratch = v + nmax, *sbuf = v + 2 * nmax;
    for (int64_t r0 = j->lo; r0 < j->hi; r0 += per) {
        const int64_t rows = j->hi - r0 < per ? j->hi - r0 : per, n = rows * unit, b = r0 * unit;
        for (int64_t i = 0; i < n; i++) v[i] = 0;
        for (int64_t t = 0; t < j->T; t++) {
            const @T@ *c = j->cur + t * j->cts + b;
            @T@ *s = j->W ? sbuf : j->S + t * j->M + b;
            if (j->reset == 0) fwd_step_@S@(c, scratch, s, v, n, th, lam, 0);
            else if (j->reset == 1) fwd_step_@S@(c, scratch, s, v, n, th, lam, 1);
            else fwd_step_@S@(c, scratch, s, v, n, th, lam, 2);
            if (j->W) pool_@S@(s, j->P + t * (j->M / 4) + r0 * (j->W / 2), rows, j->W);
        }
        if (j->V) for (int64_t i = 0; i < n; i++) j->V[b + i] = v[i];
    }
    free(v);
}

#define BWD_CASE(R, F, P, V) \
    bwd_step_@S@(u, up, g, gi, gv, a_du, a_gs, a_lam, n, th, lam, gamma, R, F, P, V)

/* the potentials are not stored by the forward pass: each block recomputes its own u[T][n]
   from the input current (the same float operations, so the same values) into a buffer that
   stays in cache, then runs BPTT over it */
static void bwd_@S@(job_@S@ *j) {
    const int64_t unit = unit_@S@(j), per = block_units_@S@(j), nmax = per * unit;
    const @T@ th = j->th, lam = j->lam, gamma = j->gamma;
    const int reset = j->reset, plain = j->detached || reset == 2;
    double s_du = 0, s_gs = 0, s_lam = 0;
    @T@ *ub = (@T@ *)malloc(sizeof(@T@) * (size_t)nmax * (size_t)(j->T + 4));
    double *a_du = (double *)malloc(sizeof(double) * 3 * (size_t)nmax);
    if (!ub || !a_du) { free(ub); free(a_du); j->failed = 1; return; }
    @T@ *gv = ub + j->T * nmax, *vv = gv + nmax, *ss = vv + nmax, *gsp = ss + nmax;
    double *a_gs = a_du + nmax, *a_lam = a_gs + nmax;
    for (int64_t r0 = j->lo; r0 < j->hi; r0 += per) {
        const int64_t rows = j->hi - r0 < per ? j->hi - r0 : per, n = rows * unit, b = r0 * unit;
        for (int64_t i = 0; i < n; i++) {
            gv[i] = 0; vv[i] = 0; a_du[i] = 0; a_gs[i] = 0; a_lam[i] = 0;
        }
        for (int64_t t = 0; t < j->T; t++) {
            const @T@ *c = j->cur + t * j->cts + b;
            if (reset == 0) fwd_step_@S@(c, ub + t * nmax, ss, vv, n, th, lam, 0);
            else if (reset == 1) fwd_step_@S@(c, ub + t * nmax, ss, vv, n, th, lam, 1);
            else fwd_step_@S@(c, ub + t * nmax, ss, vv, n, th, lam, 2);
        }
        for (int64_t t = j->T - 1; t >= 0; t--) {
            const @T@ *u = ub + t * nmax, *up = ub + (t > 0 ? t - 1 : 0) * nmax, *g = gsp;
            @T@ *gi = j->GI + t * j->M + b;
            const int first = t == j->T - 1, prev = t > 0;
            if (j->W) unpool_@S@(u, j->G + t * j->gts + r0 * (j->W / 2), gsp, rows, j->W, th);
            else g = j->G + t * j->gts + b;
            /* every flag combination gets its own branch-free, vectorised loop */
            if (reset == 0 && !plain) {
                if (first) { if (prev) BWD_CASE(0, 1, 0, 1); else BWD_CASE(0, 1, 0, 0); }
                else if (prev) BWD_CASE(0, 0, 0, 1); else BWD_CASE(0, 0, 0, 0);
            } else if (reset == 0) {
                if (first) { if (prev) BWD_CASE(0, 1, 1, 1); else BWD_CASE(0, 1, 1, 0); }
                else if (prev) BWD_CASE(0, 0, 1, 1); else BWD_CASE(0, 0, 1, 0);
            } else if (reset == 1 && !plain) {
                if (first) { if (prev) BWD_CASE(1, 1, 0, 1); else BWD_CASE(1, 1, 0, 0); }
                else if (prev) BWD_CASE(1, 0, 0, 1); else BWD_CASE(1, 0, 0, 0);
            } else if (reset == 1) {
                if (first) { if (prev) BWD_CASE(1, 1, 1, 1); else BWD_CASE(1, 1, 1, 0); }
                else if (prev) BWD_CASE(1, 0, 1, 1); else BWD_CASE(1, 0, 1, 0);
            } else {
                if (first) { if (prev) BWD_CASE(2, 1, 1, 1); else BWD_CASE(2, 1, 1, 0); }
                else if (prev) BWD_CASE(2, 0, 1, 1); else BWD_CASE(2, 0, 1, 0);
            }
        }
        for (int64_t i = 0; i < n; i++) { s_du += a_du[i]; s_gs += a_gs[i]; s_lam += a_lam[i]; }
    }
    free(ub);
    free(a_du);
    j->acc[0] = s_du; j->acc[1] = s_gs; j->acc[2] = s_lam;
}
#undef BWD_CASE

static void *fwd_entry_@S@(void *p) { fwd_@S@((job_@S@ *)p); return 0; }
static void *bwd_entry_@S@(void *p) { bwd_@S@((job_@S@ *)p); return 0; }

/* split the neurons into one contiguous slice per thread; the caller's thread takes slice 0 */
static void run_@S@(job_@S@ *base, int nthreads, int backward) {
    job_@S@ jobs[MAXTHREADS];
    pthread_t tid[MAXTHREADS];
    int started[MAXTHREADS];
    const int64_t M = base->M / unit_@S@(base);  /* units */
    nthreads = lif_threads(base->M, base->T, nthreads);
    int64_t chunk = (M + nthreads - 1) / nthreads;
    if (!base->W) chunk = (chunk + 15) / 16 * 16;
    for (int k = 0; k < nthreads; k++) {
        jobs[k] = *base;
        jobs[k].lo = k * chunk < M ? k * chunk : M;
        jobs[k].hi = (k + 1) * chunk < M ? (k + 1) * chunk : M;
        started[k] = 0;
    }
    for (int k = 1; k < nthreads; k++)
        started[k] = pthread_create(&tid[k], 0, backward ? bwd_entry_@S@ : fwd_entry_@S@,
                                    &jobs[k]) == 0;
    for (int k = 0; k < nthreads; k++) {
        if (k > 0 && started[k]) continue;
        if (backward) bwd_@S@(&jobs[k]); else fwd_@S@(&jobs[k]);
    }
    base->acc[0] = base->acc[1] = base->acc[2] = 0;
    for (int k = 0; k < nthreads; k++) {
        if (k > 0 && started[k]) pthread_join(tid[k], 0);
        if (backward) for (int q = 0; q < 3; q++) base->acc[q] += jobs[k].acc[q];
        base->failed |= jobs[k].failed;
    }
}

/* S: spikes [T, M] (W == 0) or P: pooled spikes [T, M/4] (W > 0); V: final potentials or 0 */
int lif_forward_@S@(const @T@ *cur, int64_t cts, @T@ *S, @T@ *V, @T@ *P, int64_t W, int64_t T,
                    int64_t M, double th, double lam, int reset, int nthreads) {
    job_@S@ j;
    memset(&j, 0, sizeof j);
    j.cur = cur; j.cts = cts; j.S = S; j.V = V; j.P = P; j.W = W; j.T = T; j.M = M;
    j.th = (@T@)th; j.lam = (@T@)lam; j.reset = reset;
    run_@S@(&j, nthreads, 0);
    return j.failed;
}

/* G: dL/dspikes [T, M] (W == 0) or dL/dpooled [T, M/4] (W > 0), step stride gts */
int lif_backward_@S@(const @T@ *cur, int64_t cts, const @T@ *G, int64_t gts, int64_t W, @T@ *GI,
                     int64_t T, int64_t M, double th, double lam, double gamma, int reset,
                     int detached, int nthreads, double *acc) {
    job_@S@ j;
    memset(&j, 0, sizeof j);
    j.cur = cur; j.cts = cts; j.G = G; j.W = W; j.gts = gts; j.GI = GI; j.T = T; j.M = M;
    j.th = (@T@)th; j.lam = (@T@)lam; j.gamma = (@T@)gamma; j.reset = reset;
    j.detached = detached;
    run_@S@(&j, nthreads, 1);
    acc[0] = j.acc[0]; acc[1] = j.acc[1]; acc[2] = j.acc[2];
    return j.failed;
}
"""

_HEADER = r"""
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BLK 256
#define MAXTHREADS 64
#define MINWORK (1 << 18)

/* threads used for M neurons over T steps: a thread costs tens of microseconds to start
   (milliseconds on a loaded machine), so each gets at least MINWORK neuron-steps */
int lif_threads(int64_t M, int64_t T, int nthreads) {
    if (nthreads > MAXTHREADS) nthreads = MAXTHREADS;
    if (nthreads > M * T / MINWORK) nthreads = (int)(M * T / MINWORK);
    return nthreads < 1 ? 1 : nthreads;
}
"""

_SOURCE = _HEADER + "".join(
    _TEMPLATE.replace("@T@", ctype).replace("@S@", suffix)
    for ctype, suffix in (("float", "f32"), ("double", "f64"))
)

_lib: ctypes.CDLL | None = None
_error: str | None = None
_loaded = False
_disabled = False


def _cache_dir() -> Path:
    root = os.environ.get("SPIKEFORGE_CACHE") or Path.home() / ".cache" / "spikeforge"
    return Path(root) / "lif_native"


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line
    except OSError:
        pass
    return platform.processor()


def _compile() -> ctypes.CDLL:
    """Compile the kernel (or reuse the cached build) and load it; raises with the reason."""
    cc = os.environ.get("CC", "cc")
    try:
        version = subprocess.run(
            [cc, "--version"], capture_output=True, text=True, check=True, timeout=60
        ).stdout
    except (OSError, subprocess.SubprocessError) as error:
        raise RuntimeError(f"no C compiler {cc!r}: {error}") from error
    key = "\n".join((_SOURCE, " ".join(FLAGS + LIBS), version, _cpu_flags(), platform.machine()))
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    directory = _cache_dir()
    library = directory / f"lif_native_{digest}.so"
    if not library.exists():
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError:  # a read-only home: build under the temporary directory instead
            directory = Path(tempfile.gettempdir()) / f"spikeforge-{os.getuid()}" / "lif_native"
            directory.mkdir(parents=True, exist_ok=True)
            library = directory / library.name
    if not library.exists():
        with tempfile.TemporaryDirectory(dir=directory) as tmp:
            source = Path(tmp) / "lif_native.c"
            source.write_text(_SOURCE)
            built = Path(tmp) / library.name
            result = subprocess.run(
                [cc, *FLAGS, str(source), "-o", str(built), *LIBS],
                capture_output=True,
                text=True,
                check=False,
                timeout=300,
            )
            if result.returncode != 0:
                raise RuntimeError(f"{cc} failed to build the LIF kernel:\n{result.stderr}")
            os.replace(built, library)  # atomic: concurrent processes never load a partial file
    lib = ctypes.CDLL(str(library))
    ptr, i64, dbl, cint = ctypes.c_void_p, ctypes.c_int64, ctypes.c_double, ctypes.c_int
    lib.lif_threads.argtypes = [i64, i64, cint]
    lib.lif_threads.restype = cint
    for suffix in ("f32", "f64"):
        forward = getattr(lib, f"lif_forward_{suffix}")
        forward.argtypes = [ptr, i64, ptr, ptr, ptr, i64, i64, i64, dbl, dbl, cint, cint]
        forward.restype = cint
        backward = getattr(lib, f"lif_backward_{suffix}")
        backward.argtypes = [
            ptr,
            i64,
            ptr,
            i64,
            i64,
            ptr,
            i64,
            i64,
            dbl,
            dbl,
            dbl,
            cint,
            cint,
            cint,
            ptr,
        ]
        backward.restype = cint
    return lib


def load() -> ctypes.CDLL | None:
    """The loaded kernel library, or ``None`` (disabled or not buildable; see ``status``)."""
    global _lib, _error, _loaded
    if not _loaded:
        _loaded = True
        if os.environ.get("SPIKEFORGE_NATIVE_LIF", "1") == "0":
            _error = "disabled by SPIKEFORGE_NATIVE_LIF=0"
        else:
            try:
                _lib = _compile()
            except (RuntimeError, OSError, subprocess.SubprocessError) as error:
                _error = str(error)
    return _lib


def status() -> str:
    """``"loaded"`` or why the kernel is not used."""
    return "loaded" if load() is not None else f"not used: {_error}"


def _suffix(dtype: torch.dtype) -> str:
    return {torch.float32: "f32", torch.float64: "f64"}[dtype]


def _step_layout(x: Tensor) -> tuple[Tensor, int]:
    """``(tensor, step stride)`` with every step contiguous (a stride-0 expand is kept as is)."""
    if x.dim() >= 1 and x[0].is_contiguous() and x.stride(0) in (0, x[0].numel()):
        return x, x.stride(0)
    x = x.contiguous()
    return x, x[0].numel()


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Within the block, ``lif_fused`` uses its torch loop (for comparisons and benchmarks)."""
    global _disabled
    saved, _disabled = _disabled, True
    try:
        yield
    finally:
        _disabled = saved


def supports(current: Tensor, theta: Tensor, lam: Tensor) -> bool:
    """Whether the kernel can run this call (CPU float32/float64, scalar threshold and leak)."""
    return (
        not _disabled
        and current.device.type == "cpu"
        and current.dtype in (torch.float32, torch.float64)
        and theta.dim() == 0
        and lam.dim() == 0
        and current.dim() >= 1
        and load() is not None
    )


def threads_for(current: Tensor) -> int:
    """How many threads the kernel runs ``current [T, ...]`` on (at most torch's setting)."""
    lib = load()
    if lib is None:
        raise RuntimeError(f"the native LIF kernel is {status()}")
    return int(lib.lif_threads(current[0].numel(), current.shape[0], torch.get_num_threads()))


def pool_width(current: Tensor) -> int:
    """Width ``W`` of ``current [T, N, C, H, W]`` if the kernel can fuse a 2x2 max pool (H, W
    even), else 0."""
    if current.dim() == 5 and current.shape[-1] % 2 == 0 and current.shape[-2] % 2 == 0:
        return int(current.shape[-1])
    return 0


def forward(
    current: Tensor, theta: float, lam: float, reset: str, *, pool: bool = False
) -> tuple[Tensor, Tensor, Tensor | None]:
    """``(current, spikes, v_final)`` for ``current [T, ...]``.

    ``spikes`` is ``[T, ...]``, or with ``pool`` (``current [T, N, C, H, W]``, H and W even)
    the spikes after a 2x2 max pool of stride 2, ``[T, N, C, H/2, W/2]``, and ``v_final`` is
    then ``None``. The returned ``current`` is the input with every step contiguous (the input
    itself unless it had to be copied): ``backward`` recomputes the potentials from it, so
    nothing else of size ``[T, ...]`` is kept for the backward pass.
    """
    lib = load()
    if lib is None:
        raise RuntimeError(f"the native LIF kernel is {status()}")
    width = pool_width(current) if pool else 0
    if pool and not width:
        raise ValueError(f"pooling needs [T, N, C, H, W] with even H, W; got {list(current.shape)}")
    current, cts = _step_layout(current)
    steps, per_step = current.shape[0], current[0].numel()
    if width:
        *lead, h, w = current.shape
        spikes = torch.empty((*lead, h // 2, w // 2), dtype=current.dtype)
        v = None
    else:
        spikes = torch.empty(current.shape, dtype=current.dtype)
        v = torch.empty(current.shape[1:], dtype=current.dtype)
    failed = getattr(lib, f"lif_forward_{_suffix(current.dtype)}")(
        current.data_ptr(),
        cts,
        None if width else spikes.data_ptr(),
        None if v is None else v.data_ptr(),
        spikes.data_ptr() if width else None,
        width,
        steps,
        per_step,
        theta,
        lam,
        RESET_CODES[reset],
        torch.get_num_threads(),
    )
    if failed:
        raise MemoryError("the native LIF kernel could not allocate its block buffers")
    return current, spikes, v


def backward(
    current: Tensor,
    grad_spikes: Tensor,
    theta: float,
    lam: float,
    gamma: float,
    reset: str,
    detached: bool,
    *,
    pool: bool = False,
) -> tuple[Tensor, float, float, float]:
    """``(dL/dI [T, ...], sum d*u, sum dL/dv*s, sum dL/du[t]*v[t-1])`` for the triangle surrogate.

    ``current`` is what ``forward`` returned; ``grad_spikes`` is the gradient of its spikes
    (pooled ones with ``pool``). The threshold gradient is ``-(sum d*u)/theta - sum dL/dv*s``
    (the second term is zero unless ``reset == "sub"``) and the leak gradient is the third sum;
    ``lif_fused`` assembles them.
    """
    lib = load()
    if lib is None:
        raise RuntimeError(f"the native LIF kernel is {status()}")
    current, cts = _step_layout(current)
    width = pool_width(current) if pool else 0
    grad_spikes, gts = _step_layout(grad_spikes.to(current.dtype))
    grad_in = torch.empty(current.shape, dtype=current.dtype)
    acc = (ctypes.c_double * 3)()
    failed = getattr(lib, f"lif_backward_{_suffix(current.dtype)}")(
        current.data_ptr(),
        cts,
        grad_spikes.data_ptr(),
        gts,
        width,
        grad_in.data_ptr(),
        current.shape[0],
        current[0].numel(),
        theta,
        lam,
        gamma,
        RESET_CODES[reset],
        int(detached),
        torch.get_num_threads(),
        ctypes.cast(acc, ctypes.c_void_p),
    )
    if failed:
        raise MemoryError("the native LIF kernel could not allocate its block buffers")
    return grad_in, acc[0], acc[1], acc[2]
