#!/usr/bin/env python3
"""Fixtures for our FID Inception-v3 (src/model/inception.rs), computed with pytorch-fid's own
model (`pytorch_fid.inception.InceptionV3`, the network behind the FID of papers).

The real weight file (pt_inception-2015-12-05-6726825d.pth, 91 MB) is downloaded from GitHub,
which this machine cannot reach, and is too large to commit. So the network is filled with
weights from a formula that the Rust test repeats: for the tensor named `name`, element i is
u = ((i * 2654435761 + seed(name)) mod 2^32) / 2^32 - 1/2 (seed = 40503 * the sum of the name's
bytes), scaled per kind below. The fixture keeps the state dict's names and shapes (what the
real file holds: torchvision's Inception3 names) and the 2048-d pool features of two images, so
our network must have the same layers in the same places to match.

    .venv-ref/bin/pip install torch torchvision pytorch-fid scipy
    .venv-ref/bin/python scripts/inception_fixtures.py          # writes tests/fixtures/inception/

It also writes two small .pth files (the same tensors in the zip format of torch.save and in
the legacy format of PyTorch <= 1.5) to test that the CLI reads either.
"""
import json
from pathlib import Path

import numpy as np
import torch
import pytorch_fid.inception as fid_inception

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "inception"


def formula(name: str, shape) -> torch.Tensor:
    n = int(np.prod(shape)) if len(shape) else 1
    seed = (40503 * sum(name.encode())) % 2**32
    i = np.arange(n, dtype=np.uint64)
    u = ((i * np.uint64(2654435761) + np.uint64(seed)) % np.uint64(2**32)).astype(np.float64) / 2**32 - 0.5
    if name.endswith("conv.weight"):
        fan_in = int(np.prod(shape[1:]))
        v = u * np.sqrt(24.0 / fan_in)  # variance 2 / fan_in (He et al. 2015)
    elif name.endswith("bn.weight"):
        v = 1 + 0.2 * u
    elif name.endswith("bn.running_var"):
        v = 1 + 0.5 * (u + 0.5)
    elif name.endswith(("bn.bias", "bn.running_mean")):
        v = 0.2 * u
    else:  # fc: not part of the pool features
        v = 0.01 * u
    return torch.from_numpy(v.astype(np.float32)).reshape(shape)


def formula_state_dict(reference: dict) -> dict:
    return {name: (t if name.endswith("num_batches_tracked") else formula(name, tuple(t.shape)))
            for name, t in reference.items()}


def images() -> torch.Tensor:
    """Two 3×32×32 images of 8-bit levels, as values in [0, 1] (what pytorch-fid reads)."""
    n, c, h, w = np.meshgrid(np.arange(2), np.arange(3), np.arange(32), np.arange(32), indexing="ij")
    levels = np.floor(127.5 + 127.49 * np.sin(0.31 * h + 0.17 * w * (n + 1) + 1.3 * c + 0.5 * n))
    return torch.from_numpy((levels / 255).astype(np.float32))


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    # pytorch-fid's own constructor, with the download replaced by the formula's weights.
    shapes = {}

    def formula_weights(url, progress=True):
        skeleton = fid_inception._inception_v3(num_classes=1008, aux_logits=False, weights=None)
        for name, module in [("Mixed_5b", fid_inception.FIDInceptionA(192, pool_features=32)),
                             ("Mixed_5c", fid_inception.FIDInceptionA(256, pool_features=64)),
                             ("Mixed_5d", fid_inception.FIDInceptionA(288, pool_features=64)),
                             ("Mixed_6b", fid_inception.FIDInceptionC(768, channels_7x7=128)),
                             ("Mixed_6c", fid_inception.FIDInceptionC(768, channels_7x7=160)),
                             ("Mixed_6d", fid_inception.FIDInceptionC(768, channels_7x7=160)),
                             ("Mixed_6e", fid_inception.FIDInceptionC(768, channels_7x7=192)),
                             ("Mixed_7b", fid_inception.FIDInceptionE_1(1280)),
                             ("Mixed_7c", fid_inception.FIDInceptionE_2(2048))]:
            setattr(skeleton, name, module)
        state = skeleton.state_dict()
        shapes.update({k: list(v.shape) for k, v in state.items() if not k.endswith("num_batches_tracked")})
        return formula_state_dict(state)

    fid_inception.load_state_dict_from_url = formula_weights
    model = fid_inception.InceptionV3([fid_inception.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
    x = images()
    with torch.no_grad():
        features = model(x)[0].flatten(1)
    (OUT / "state_dict_shapes.json").write_text(
        "{\n" + ",\n".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in shapes.items()) + "\n}\n")
    (OUT / "features.json").write_text(json.dumps({
        "source": "pytorch_fid.inception.InceptionV3([3]) (pytorch-fid 0.3.0, torch "
                  f"{torch.__version__}) with the formula's weights; input: images() in [0, 1]",
        "images_shape": list(x.shape),
        "images_levels": (x * 255).round().to(torch.int64).flatten().tolist(),
        "features": features.tolist(),
    }) + "\n")

    small = {"Conv2d_1a_3x3.conv.weight": formula("Conv2d_1a_3x3.conv.weight", (4, 3, 3, 3)),
             "Conv2d_1a_3x3.bn.running_var": formula("Conv2d_1a_3x3.bn.running_var", (4,)),
             "Conv2d_1a_3x3.bn.num_batches_tracked": torch.tensor(7)}
    torch.save(small, OUT / "small-zip.pth")
    torch.save(small, OUT / "small-legacy.pth", _use_new_zipfile_serialization=False)
    print(f"wrote {OUT}: {len(shapes)} tensors, features {tuple(features.shape)}, "
          f"|features| mean {features.abs().mean():.4f}")


if __name__ == "__main__":
    main()
