"""Lee et al. 2020 studies on digits that ``spikeforge train`` cannot run (it must export):
networks with pooling neurons and residual blocks, the inference-length curve, and the
paper's operation / energy model on a trained network or an exported bundle.

``python -m spikeforge.studies.lee2020_study train --arch c8k3-p-r16s2-64 --timesteps 30 --out
R.json`` trains any ``LeeNet`` on digits and writes accuracy, accuracy against the inference
length ``T'``, per-layer activity and the op/energy figures;
``python -m spikeforge.studies.lee2020_study energy BUNDLE_DIR`` applies the model to an exported
bundle (its ``test_x.npy``) with the golden model.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from spikeforge.algo.methods.lee2020 import (
    GRADIENTS,
    LeeNet,
    accuracy,
    poisson_trains,
    text_leak,
    train_lee,
)
from spikeforge.algo.methods.lee2020_energy import (
    FP32,
    INT32,
    gain_vs_ann,
    op_report,
    snn_accumulates,
)
from spikeforge.algo.training.pipeline import Trainer
from spikeforge.sim.datasets import load_digits


@torch.no_grad()
def synapse_activity(net: LeeNet, x: torch.Tensor) -> list[dict[str, Any]]:
    """Per synapse (conv/linear, skip convs and the output included, in call order): its
    ``#MAC = N·S`` per sample and the mean activity of the spikes it receives. Pooling
    neurons (fixed 0.25 weights) are not counted, as in the paper's trainable-layer sums."""
    rows: list[dict[str, Any]] = []
    names = {module: name for name, module in net.named_modules()}

    def hook(module: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        rows.append(
            {
                "synapse": names[module],
                "macs": int(math.prod(out.shape[1:]) * module.weight[0].numel()),
                "activity": float(args[0].mean()),
            }
        )

    handles = [
        m.register_forward_hook(hook) for m in net.modules() if isinstance(m, nn.Linear | nn.Conv2d)
    ]
    saved, net.gradient = net.gradient, "bptt"  # only the per-step synapse calls
    try:
        net.eval()(x)
    finally:
        net.gradient = saved
        for handle in handles:
            handle.remove()
    return rows


def energy_figures(rows: Sequence[dict[str, Any]], timesteps: int) -> dict[str, float]:
    """``#MAC``, ``#AC = T·Σ #MAC·a`` and the int/fp energy advantages over the ANN."""
    macs = [r["macs"] for r in rows]
    acs = snn_accumulates(macs, [r["activity"] for r in rows], timesteps)
    ratio = acs / sum(macs)
    return {
        "ann_macs": float(sum(macs)),
        "snn_acs": acs,
        "ac_per_mac": ratio,
        "gain_vs_ann_int32": gain_vs_ann(ratio, INT32),
        "gain_vs_ann_fp32": gain_vs_ann(ratio, FP32),
    }


def study(args: argparse.Namespace) -> dict[str, Any]:
    """Train one ``LeeNet`` on digits and measure it."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data = load_digits()
    leak = text_leak(args.tau_m) if args.leak == "text" else float(args.leak)
    net = LeeNet(
        args.arch,
        data.image_shape if args.arch[:1] in "cr" else (64,),
        data.classes,
        args.timesteps,
        gradient=args.gradient,
        leak=leak,
        tau_m=args.tau_m,
        dropout=args.dropout,
    )
    trainer = Trainer(progress=False)
    start = time.perf_counter()
    train_lee(
        net,
        data,
        trainer,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        seed=args.seed + 1,
        eval_every=args.eval_every,
    )
    seconds = time.perf_counter() - start
    seed = trainer.eval_seed
    by_steps = {}
    for steps in sorted({*args.infer_steps, args.timesteps}):
        net.timesteps = steps
        by_steps[steps] = accuracy(net, data.x_test, data.y_test, data.scale, seed=seed)
    net.timesteps = args.timesteps
    x = poisson_trains(
        data.x_test.reshape(len(data.x_test), *net.input_shape),
        data.scale,
        args.timesteps,
        torch.Generator().manual_seed(seed),
    )
    rows = synapse_activity(net, x)
    return {
        "arch": args.arch,
        "gradient": args.gradient,
        "timesteps": args.timesteps,
        "leak": leak,
        "epochs": args.epochs,
        "lr": args.lr,
        "batch_size": args.batch_size,
        "dropout": args.dropout,
        "seed": args.seed,
        "test_acc": by_steps[args.timesteps],
        "test_acc_by_inference_steps": by_steps,
        "synapses": rows,
        "energy": energy_figures(rows, args.timesteps),
        "train_seconds": seconds,
        "history": trainer.history,
    }


def bundle_energy(path: Path) -> dict[str, Any]:
    """The op/energy model on an exported bundle and its ``test_x.npy`` (golden model run)."""
    from spikeforge.sim import golden
    from spikeforge.sim.bundle import load_bundle

    bundle = load_bundle(path)
    x = np.load(path / "test_x.npy")
    result = golden.run(bundle, x)
    return op_report(bundle, x, result).as_dict()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m spikeforge.studies.lee2020_study", description=__doc__
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("train", help="train a LeeNet on digits and measure it")
    run.add_argument("--arch", default="c8k3-p-c16k3-p-64")
    run.add_argument("--gradient", default="aggregate", choices=GRADIENTS)
    run.add_argument("--timesteps", type=int, default=30)
    run.add_argument("--infer-steps", type=int, nargs="*", default=[5, 10, 20, 30, 50, 80])
    run.add_argument("--epochs", type=int, default=20)
    run.add_argument("--lr", type=float, default=0.003)
    run.add_argument("--batch-size", type=int, default=32)
    run.add_argument("--dropout", type=float, default=0.2)
    run.add_argument("--leak", default="0.99", help="a number, or 'text' for exp(-1/tau_m)")
    run.add_argument("--tau-m", type=float, default=100.0)
    run.add_argument("--eval-every", type=int, default=5)
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--threads", type=int, default=2)
    run.add_argument("--out", type=Path, required=True, help="JSON file to write")
    energy = sub.add_parser("energy", help="op/energy model on an exported bundle")
    energy.add_argument("bundle", type=Path)
    args = parser.parse_args(argv)
    result = study(args) if args.command == "train" else bundle_energy(args.bundle)
    text = json.dumps(result, indent=1, default=float)
    if args.command == "train":
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(
            f"{args.arch} ({args.gradient}, T={args.timesteps}): test {result['test_acc']:.4f}; "
            f"by T': {result['test_acc_by_inference_steps']}; energy {result['energy']}"
        )
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
