#!/usr/bin/env python3
"""The reference a user would otherwise pick: the same U-Net in PyTorch + diffusers, timed the
same way as `tabdiffusion bench` (training images/s with Adam, DDIM-50 images/s).

    python3 -m venv .venv-ref && .venv-ref/bin/pip install torch diffusers safetensors numpy
    .venv-ref/bin/python scripts/bench/reference_bench.py --model mnist-small --batch 64

Prints one JSON line with the same keys as `tabdiffusion bench --json`. With `--profile`, also
prints to stderr where the timed training steps spent their time: torch.profiler's self CPU
time per operator (scripts/bench/profile-cpu puts it beside ours).
"""
import argparse
import json
import sys
import time

import torch
from diffusers import DDIMScheduler, UNet2DModel

# The presets of src/model/presets.rs, as diffusers UNet2DModel configs.
PRESETS = {
    "tiny": dict(sample_size=28, in_channels=1, out_channels=1, block_out_channels=(8, 16),
                 down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                 up_block_types=("AttnUpBlock2D", "UpBlock2D"), layers_per_block=1, norm_num_groups=4),
    "mnist-small": dict(sample_size=28, in_channels=1, out_channels=1, block_out_channels=(32, 64, 64),
                        down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
                        up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"), layers_per_block=1,
                        norm_num_groups=8),
    "ddpm-cifar10": dict(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(128, 256, 256, 256),
                         down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
                         up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
                         layers_per_block=2, norm_num_groups=32, norm_eps=1e-6, dropout=0.1,
                         flip_sin_to_cos=False, freq_shift=1),
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="mnist-small", choices=PRESETS)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--train-steps", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--profile", action="store_true", help="self CPU time per operator of the training steps, to stderr")
    args = parser.parse_args()

    torch.manual_seed(0)
    model = UNet2DModel(attention_head_dim=None, **PRESETS[args.model]).to(args.device)
    params = sum(p.numel() for p in model.parameters())
    c, s = model.config.in_channels, model.config.sample_size
    x0 = torch.rand(args.batch, c, s, s, device=args.device) * 2 - 1
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4, eps=1e-8)
    scheduler = DDIMScheduler(num_train_timesteps=1000)

    def train_step():
        t = torch.randint(0, 1000, (args.batch,), device=args.device)
        noise = torch.randn_like(x0)
        x_t = scheduler.add_noise(x0, noise, t)
        loss = torch.nn.functional.mse_loss(model(x_t, t).sample, noise)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        return loss.item()

    train_step()  # warm-up
    start = time.perf_counter()
    for _ in range(args.train_steps):
        train_step()
    train_images_per_s = args.train_steps * args.batch / (time.perf_counter() - start)
    if args.profile:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
            for _ in range(args.train_steps):
                train_step()
        print(profile.key_averages().table(sort_by="self_cpu_time_total", row_limit=30), file=sys.stderr)

    model.eval()
    scheduler.set_timesteps(50)
    with torch.no_grad():
        x = torch.randn(args.batch, c, s, s, device=args.device)
        start = time.perf_counter()
        for t in scheduler.timesteps:
            x = scheduler.step(model(x, t).sample, t, x, eta=0.0).prev_sample
        x.cpu()
        ddim50_images_per_s = args.batch / (time.perf_counter() - start)

    print(json.dumps({
        "model": args.model, "backend": f"pytorch-{args.device}", "batch": args.batch, "params": params,
        "train_images_per_s": round(train_images_per_s, 3), "ddim50_images_per_s": round(ddim50_images_per_s, 3),
        "torch": torch.__version__, "threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()
