#!/usr/bin/env python3
"""The reference for the README's quality table: the same U-Net trained with PyTorch + diffusers
on the same data, with the same recipe and budget as `tabdiffusion train`, saved as a diffusers
model folder that `tabdiffusion eval` reads as it reads its own files (same samplers, same
feature network, same test images).

    python3 -m venv .venv-ref && .venv-ref/bin/pip install torch diffusers safetensors numpy pillow
    .venv-ref/bin/python scripts/study/reference_train.py --model mnist-small --data www/data/mnist \\
        --steps 800 --batch 32 --lr 1e-3 --out reference-mnist-small
    scripts/study/eval-table reference-mnist-small 200

The recipe is `tabdiffusion train`'s (src/train): Ho et al.'s Algorithm 1 (t uniform in
{0..T-1}, ε ~ N(0, I), MSE on ε) with T = 1000 and linear β from 1e-4 to 0.02; Adam
(β = 0.9, 0.999, ε = 1e-8) with the global gradient norm clipped to 1; EMA of the weights with
diffusers' warm-up, min(decay, (1 + n) / (10 + n)); pixels scaled to [-1, 1]. The random draws
are torch's, not ours, so the two runs see different minibatches of the same distribution.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from diffusers import DDPMScheduler, UNet2DModel
from diffusers.training_utils import EMAModel

# The same presets as the benchmark, from scripts/bench/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from reference_bench import PRESETS  # noqa: E402
# The tile reader, from the cluster trainer.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cluster"))
import train as cluster_train  # noqa: E402


def load_train_split(folder: Path) -> np.ndarray:
    """The training images of a tiled dataset as uint8 [N, C, H, W]: the cluster trainer's
    reader (scripts/cluster/train.py), one copy of the tile layout in Python."""
    try:
        return cluster_train.load_train_split(folder)[1]
    except cluster_train.Refusal as e:
        raise SystemExit(str(e))


def training_step(model, scheduler, optimizer, ema, x0, noise, t):
    """One step of the recipe (Algorithm 1, the clip, Adam, the EMA); the loss. tests/lockstep.rs
    checks this very step against ours (scripts/fixtures/lockstep.py)."""
    loss = torch.nn.functional.mse_loss(model(scheduler.add_noise(x0, noise, t), t).sample, noise)
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    ema.step(model.parameters())
    return loss


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="mnist-small", choices=PRESETS)
    parser.add_argument("--data", type=Path, default=Path("www/data/mnist"))
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--ema-decay", type=float, default=0.999)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-every", type=int, default=100)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    data = torch.from_numpy(load_train_split(args.data))
    model = UNet2DModel(attention_head_dim=None, **PRESETS[args.model]).to(args.device)
    if (model.config.in_channels, model.config.sample_size) != tuple(data.shape[1:3]):
        raise SystemExit(f"{args.model} takes {model.config.in_channels}×{model.config.sample_size}² images, "
                         f"{args.data} has {data.shape[1]}×{data.shape[2]}²")
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-8)
    ema = EMAModel(model.parameters(), decay=args.ema_decay)

    start, smoothed = time.perf_counter(), None
    for step in range(1, args.steps + 1):
        index = torch.randint(0, len(data), (args.batch,))
        x0 = (data[index].float() / 127.5 - 1).to(args.device)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (args.batch,), device=args.device)
        noise = torch.randn_like(x0)
        loss = training_step(model, scheduler, optimizer, ema, x0, noise, t)
        smoothed = loss.item() if smoothed is None else 0.98 * smoothed + 0.02 * loss.item()
        if step % args.log_every == 0 or step == args.steps:
            print(json.dumps({"step": step, "loss": round(smoothed, 5),
                              "images_per_s": round(step * args.batch / (time.perf_counter() - start), 2)}),
                  flush=True)

    ema.copy_to(model.parameters())
    model.save_pretrained(args.out)
    scheduler.save_pretrained(args.out)
    print(json.dumps({"out": str(args.out), "steps": args.steps, "batch": args.batch,
                      "seconds": round(time.perf_counter() - start, 1), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
