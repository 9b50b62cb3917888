#!/usr/bin/env python3
"""Held-out denoising error by timestep: for each model (diffusers folders; `tabdiffusion export`
turns our files into one), the mean squared error of its ε prediction on the first 512 MNIST
test images at a few t, from the same noise, with diffusers' own forward pass and schedule.
Where two trainings differ in sample quality, this shows at which noise levels they differ.

    .venv-ref/bin/python scripts/study/loss_by_t.py ours=/tmp/ours reference=reference-mnist-small
"""
import json
import sys
from pathlib import Path

import numpy as np
import torch
from diffusers import DDPMScheduler, UNet2DModel
from PIL import Image

TIMESTEPS = [0, 10, 50, 100, 300, 500, 700, 900, 980, 999]


def test_images(folder: Path, n: int) -> torch.Tensor:
    manifest = json.loads((folder / "manifest.json").read_text())
    size = manifest["height"]
    sheet = np.asarray(Image.open(folder / manifest["test"]["tiles"][0]).convert("L"))
    columns = sheet.shape[1] // size
    images = [sheet[(k // columns) * size:(k // columns + 1) * size, (k % columns) * size:(k % columns + 1) * size]
              for k in range(n)]
    return torch.from_numpy(np.stack(images)[:, None]).float() / 127.5 - 1


def main():
    models = {name: UNet2DModel.from_pretrained(path).eval()
              for name, path in (arg.split("=", 1) for arg in sys.argv[1:])}
    x0 = test_images(Path("www/data/mnist"), 512)
    scheduler = DDPMScheduler(num_train_timesteps=1000)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    print(json.dumps({"images": len(x0), "models": list(models)}))
    with torch.no_grad():
        for t in TIMESTEPS:
            steps = torch.full((len(x0),), t)
            x_t = scheduler.add_noise(x0, noise, steps)
            row = {name: round(torch.mean((m(x_t, steps).sample - noise) ** 2).item(), 5) for name, m in models.items()}
            print(json.dumps({"t": t, **row}), flush=True)


if __name__ == "__main__":
    main()
