#!/usr/bin/env python3
"""The PyTorch side of tests/lockstep.rs: trains the fixture's initial UNet2DModel on the inputs
our trainer drew (each step's x_0, t and ε, written by `cargo test --release --test lockstep --
--ignored`) with the recipe of `tabdiffusion train` — x_t from DDPMScheduler.add_noise, MSE on ε,
the global gradient norm clipped to 1 (clip_grad_norm_), torch.optim.Adam(lr, (0.9, 0.999),
1e-8), EMAModel(decay 0.999) after each step; the very `training_step` of
scripts/reference_train.py, the README's reference — and keeps every step's loss, the final weights
and the final EMA weights as the test's expected values.

    .venv-ref/bin/python scripts/lockstep.py [--inputs /tmp/lockstep-inputs]
"""
import argparse
import json
from pathlib import Path

import diffusers
import numpy as np
import torch
from diffusers import DDPMScheduler, UNet2DModel
from diffusers.training_utils import EMAModel
from safetensors.torch import save_file

from reference_train import training_step

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "lockstep"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--inputs", type=Path, default=Path("/tmp/lockstep-inputs"))
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    x0s, noises = (torch.from_numpy(np.load(args.inputs / f"{n}.npy")) for n in ("x0", "noise"))
    timesteps = torch.from_numpy(np.load(args.inputs / "timesteps.npy")).long()
    model = UNet2DModel.from_pretrained(FIXTURE / "initial")
    model.train()
    scheduler = DDPMScheduler.from_pretrained(FIXTURE / "initial")
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-8)
    ema = EMAModel(model.parameters(), decay=0.999)
    losses = []
    for x0, noise, t in zip(x0s, noises, timesteps):
        losses.append(training_step(model, scheduler, optimizer, ema, x0, noise, t).item())
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, FIXTURE / "final.safetensors")
    ema.copy_to(model.parameters())
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, FIXTURE / "final_ema.safetensors")
    (FIXTURE / "reference.json").write_text(json.dumps({
        "source": f"diffusers {diffusers.__version__}, torch {torch.__version__}: scripts/lockstep.py",
        "learning_rate": args.lr, "losses": losses}, indent=1))
    print(json.dumps({"steps": len(losses), "first": losses[0], "last": losses[-1]}))


if __name__ == "__main__":
    main()
