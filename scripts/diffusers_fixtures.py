#!/usr/bin/env python3
"""Reference numbers from PyTorch + diffusers, kept as small fixtures for the Rust tests.

    python3 -m venv .venv-ref && .venv-ref/bin/pip install torch diffusers safetensors numpy
    .venv-ref/bin/python scripts/diffusers_fixtures.py make
    .venv-ref/bin/python scripts/diffusers_fixtures.py check-export tests/fixtures/diffusers/ours
    .venv-ref/bin/python scripts/diffusers_fixtures.py training-step
    .venv-ref/bin/python scripts/diffusers_fixtures.py schedulers

`make` writes tests/fixtures/diffusers/: three tiny random-weight UNet2DModel folders (unet_a: the
google/ddpm-cifar10-32 layout; unet_b: diffusers' defaults with multi-head attention and no mid
attention; unet_c: class-conditional, num_class_embeds = 4) and reference.json with the
schedules, the timestep spacings, single DDPM / DDIM / DPM-Solver++ steps for every prediction
type, each U-Net's output at given t (and class labels for unet_c), and 10-step DDIM and
DPM-Solver++ runs from fixed noise.

`training-step` runs one step of DDPM's Algorithm 1 on unet_a with given x_0, t and ε and keeps
the loss and the gradients of a few parameters in training_step.json.

`schedulers` runs DDIM, DDPM and DPM-Solver++ on a toy denoiser under every scheduler_config
field that changes a result (clip_sample, clip_sample_range, thresholding, set_alpha_to_one,
steps_offset, timestep_spacing, prediction_type, variance_type, rescale_betas_zero_snr) and keeps
the final samples in schedulers.json (a 50-step schedule, so DDPM's whole run stays small).

`check-export DIR` is the reverse direction: it loads our export (written by
`tabdiffusion export`) with `UNet2DModel.from_pretrained`, runs it on fixed input, and records
what diffusers saw and computed in export_check.json, which tests/diffusers.rs compares with our
own output. CI does not run Python: rerun this script when the fixtures must change.
"""
import json
import sys
from pathlib import Path

import diffusers
import numpy as np
import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, UNet2DModel
from diffusers.utils.torch_utils import randn_tensor

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "diffusers"

UNET_A = dict(  # google/ddpm-cifar10-32's options, at toy size
    sample_size=8, in_channels=3, out_channels=3, block_out_channels=(8, 16),
    down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
    layers_per_block=2, attention_head_dim=None, norm_num_groups=4, norm_eps=1e-6,
    flip_sin_to_cos=False, freq_shift=1, downsample_padding=0,
)
DDPM_CIFAR10 = dict(  # google/ddpm-cifar10-32's config.json, the DDPM paper's CIFAR-10 U-Net
    sample_size=32, in_channels=3, out_channels=3, block_out_channels=(128, 256, 256, 256),
    down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"), layers_per_block=2,
    attention_head_dim=None, norm_eps=1e-6, flip_sin_to_cos=False, freq_shift=1, downsample_padding=0,
)
UNET_B = dict(  # diffusers' defaults where not given: flip_sin_to_cos, freq_shift 0, padding 1
    sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16, 16),
    down_block_types=("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
    up_block_types=("AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    layers_per_block=1, attention_head_dim=4, norm_num_groups=4, add_attention=False,
)
UNET_C = dict(  # class-conditional: 3 classes + the null class of classifier-free guidance
    sample_size=8, in_channels=1, out_channels=1, block_out_channels=(4, 8),
    down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
    layers_per_block=1, attention_head_dim=None, norm_num_groups=2, num_class_embeds=4,
)


def flat(t):
    return [float(v) for v in t.detach().double().flatten().tolist()]


def randn(shape, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def make_unet(name, config, seed):
    torch.manual_seed(seed)
    model = UNet2DModel(**config).eval()
    # Random weights everywhere (norms included), so a wrong name or transpose cannot hide.
    with torch.no_grad():
        for i, p in enumerate(model.parameters()):
            p.copy_(randn(p.shape, seed + i) * 0.3)
    model.save_pretrained(OUT / name)
    return model


def unet_case(model, batch, seed):
    c, s = model.config.in_channels, model.config.sample_size
    x = randn((batch, c, s, s), seed)
    t = torch.tensor([10, 700][:batch])
    with torch.no_grad():
        y = model(x, t).sample
    return {"shape": list(x.shape), "timesteps": t.tolist(), "input": flat(x), "output": flat(y)}


def class_case(model, seed):
    """UNet2DModel(x, t, class_labels).sample, the null label (3) included."""
    c, s = model.config.in_channels, model.config.sample_size
    x = randn((4, c, s, s), seed)
    t = torch.tensor([10, 700, 700, 300])
    class_labels = torch.tensor([0, 2, 3, 1])
    with torch.no_grad():
        y = model(x, t, class_labels=class_labels).sample
    return {"shape": list(x.shape), "timesteps": t.tolist(), "class_labels": class_labels.tolist(),
            "input": flat(x), "output": flat(y)}


def schedules():
    out = {}
    for name, beta_schedule in [("linear", "linear"), ("cosine", "squaredcos_cap_v2")]:
        s = DDPMScheduler(num_train_timesteps=1000, beta_schedule=beta_schedule)
        out[name] = {"betas": flat(s.betas), "alphas_cumprod": flat(s.alphas_cumprod)}
    return out


def spacings():
    out = {"ddim": {}, "dpm_solver": {}}
    for spacing in ["leading", "trailing", "linspace"]:
        out["ddim"][spacing], out["dpm_solver"][spacing] = {}, {}
        for n in [10, 30, 50]:
            s = DDIMScheduler(timestep_spacing=spacing)
            s.set_timesteps(n)
            out["ddim"][spacing][str(n)] = s.timesteps.tolist()
            s = DPMSolverMultistepScheduler(timestep_spacing=spacing)
            s.set_timesteps(n)
            out["dpm_solver"][spacing][str(n)] = s.timesteps.tolist()
    return out


def single_steps():
    shape = (1, 1, 4, 4)
    sample, model_output, noise = randn(shape, 1), randn(shape, 2), randn(shape, 3)
    ddim, ddpm = [], []
    for prediction_type in ["epsilon", "sample", "v_prediction"]:
        for t, eta in [(500, 0.0), (500, 0.5), (900, 1.0), (0, 0.5)]:
            s = DDIMScheduler(prediction_type=prediction_type)
            s.set_timesteps(10)
            out = s.step(model_output, t, sample, eta=eta, variance_noise=noise)
            ddim.append({"prediction_type": prediction_type, "t": t, "num_inference_steps": 10, "eta": eta,
                         "prev_sample": flat(out.prev_sample), "pred_x0": flat(out.pred_original_sample)})
        for variance_type in ["fixed_small", "fixed_large"]:
            for t in [999, 500, 1, 0]:
                s = DDPMScheduler(prediction_type=prediction_type, variance_type=variance_type)
                seed = 1000 + t
                out = s.step(model_output, t, sample, generator=torch.Generator().manual_seed(seed))
                # The step drew its noise with randn_tensor from this generator: draw it again.
                z = randn_tensor(shape, generator=torch.Generator().manual_seed(seed), dtype=sample.dtype)
                variance = s._get_variance(t).item() if t > 0 else 0.0
                mean = out.prev_sample.double() - variance ** 0.5 * z.double()
                ddpm.append({"prediction_type": prediction_type, "variance_type": variance_type, "t": t,
                             "noise": flat(z), "variance": variance, "posterior_mean": flat(mean),
                             "prev_sample": flat(out.prev_sample), "pred_x0": flat(out.pred_original_sample)})
    return {"shape": list(shape), "sample": flat(sample), "model_output": flat(model_output),
            "noise": flat(noise), "ddim": ddim, "ddpm": ddpm}


def dpm_solver_run(steps, prediction_type):
    """A fixed "model" (a linear function of x and t) so the multistep history matters."""
    shape = (1, 1, 4, 4)
    x_t = randn(shape, 7)
    s = DPMSolverMultistepScheduler(prediction_type=prediction_type)
    s.set_timesteps(steps)
    x = x_t
    for t in s.timesteps:
        x = s.step(toy_model(x, int(t)), t, x).prev_sample
    return {"prediction_type": prediction_type, "steps": steps, "x_T": flat(x_t),
            "timesteps": s.timesteps.tolist(), "result": flat(x)}


def toy_model(x, t):
    return 0.9 * x + 0.05 * (t / 1000.0)


def sampling_runs(model):
    x_t = randn((2, model.config.in_channels, model.config.sample_size, model.config.sample_size), 11)
    runs = {}
    for name, scheduler in [("ddim10", DDIMScheduler()), ("dpm_solver10", DPMSolverMultistepScheduler())]:
        scheduler.set_timesteps(10)
        x = x_t.clone()
        with torch.no_grad():
            for t in scheduler.timesteps:
                eps = model(x, t).sample
                x = scheduler.step(eps, t, x).prev_sample
        runs[name] = {"timesteps": scheduler.timesteps.tolist(), "x_T": flat(x_t), "result": flat(x)}
    return runs


def make():
    OUT.mkdir(parents=True, exist_ok=True)
    unet_a, unet_b = make_unet("unet_a", UNET_A, 100), make_unet("unet_b", UNET_B, 200)
    unet_c = make_unet("unet_c", UNET_C, 300)
    reference = {
        "diffusers_version": diffusers.__version__,
        "torch_version": torch.__version__,
        "schedules": schedules(),
        "spacings": spacings(),
        "steps": single_steps(),
        "dpm_solver_toy": [dpm_solver_run(10, p) for p in ["epsilon", "sample", "v_prediction"]]
        + [dpm_solver_run(20, "epsilon")],
        "unets": {"unet_a": unet_case(unet_a, 2, 20), "unet_b": unet_case(unet_b, 2, 21)},
        "runs_unet_a": sampling_runs(unet_a),
        "class_conditional": {"unet_c": class_case(unet_c, 22)},
        "ddpm_cifar10_parameters": sum(p.numel() for p in UNet2DModel(**DDPM_CIFAR10).parameters()),
    }
    (OUT / "reference.json").write_text(json.dumps(reference))


def check_export(folder):
    model, info = UNet2DModel.from_pretrained(folder, output_loading_info=True)
    model.eval()
    case = unet_case(model, 2, 30)
    scheduler = DDPMScheduler.from_pretrained(folder)
    case.update({
        "scheduler": {"class": type(scheduler).__name__, "beta_schedule": scheduler.config.beta_schedule,
                      "prediction_type": scheduler.config.prediction_type,
                      "alphas_cumprod_last": scheduler.alphas_cumprod[-1].item(),
                      # every field as DDPMScheduler read it from our scheduler_config.json
                      "config": {k: v for k, v in scheduler.config.items() if not k.startswith("_")}},
        "diffusers_version": diffusers.__version__,
        "folder": Path(folder).name,
        "loading_info": {k: sorted(map(str, v)) for k, v in info.items()},
        "parameters": sum(p.numel() for p in model.parameters()),
    })
    (OUT / "export_check.json").write_text(json.dumps(case))
    print(json.dumps({k: v for k, v in case.items() if k not in ("input", "output")}))


def training_step():
    """One step of DDPM's Algorithm 1 on unet_a in PyTorch: the loss MSE(ε_θ(x_t, t), ε) and its
    gradient for a few parameters (conv, linear, attention, norm), with given x_0, t and ε."""
    model = UNet2DModel.from_pretrained(OUT / "unet_a")
    model.train()
    c, s = model.config.in_channels, model.config.sample_size
    x0 = randn((3, c, s, s), 40).clamp(-1, 1)
    noise = randn((3, c, s, s), 41)
    t = torch.tensor([5, 500, 999])
    x_t = DDPMScheduler(num_train_timesteps=1000).add_noise(x0, noise, t)
    loss = torch.nn.functional.mse_loss(model(x_t, t).sample, noise)
    loss.backward()
    params = dict(model.named_parameters())
    names = ["conv_in.weight", "conv_out.bias", "time_embedding.linear_1.weight",
             "down_blocks.1.attentions.0.to_q.weight", "mid_block.resnets.0.norm1.weight",
             "up_blocks.2.attentions.0.group_norm.bias"]
    grads = {n: {"shape": list(params[n].shape), "grad": flat(params[n].grad)} for n in names if n in params}
    norm = torch.sqrt(sum((p.grad.double() ** 2).sum() for p in model.parameters() if p.grad is not None))
    (OUT / "training_step.json").write_text(json.dumps({
        "source": f"diffusers {diffusers.__version__}, torch {torch.__version__}: scripts/diffusers_fixtures.py training-step",
        "shape": list(x0.shape), "x0": flat(x0), "noise": flat(noise), "timesteps": t.tolist(),
        "loss": loss.item(), "grad_norm": norm.item(), "grads": grads}))
    print(f"loss {loss.item():.6f}, gradient norm {norm.item():.6f}, {sorted(grads)}")


# The scheduler cases: a short, steep schedule (ᾱ_49 ≈ 5e-5, so x̂_0 leaves [−1, 1] and
# clipping and thresholding matter), inputs from closed-form formulas the Rust test repeats.
SCHEDULE = {"num_train_timesteps": 50, "beta_start": 0.002, "beta_end": 0.4}
SHAPE = (2, 3, 4, 4)
SCHEDULER_CASES = [
    # (name, sampler, steps, fields)
    ("ddim", "ddim", 10, {}),
    ("ddim_no_clip", "ddim", 10, {"clip_sample": False}),
    ("ddim_clip_range", "ddim", 10, {"clip_sample_range": 0.5}),
    ("ddim_thresholding", "ddim", 10, {"thresholding": True, "dynamic_thresholding_ratio": 0.9, "sample_max_value": 3.0}),
    ("ddim_alpha_not_one", "ddim", 10, {"set_alpha_to_one": False}),
    ("ddim_offset", "ddim", 10, {"steps_offset": 1}),
    ("ddim_trailing", "ddim", 10, {"timestep_spacing": "trailing"}),
    ("ddim_sample", "ddim", 10, {"prediction_type": "sample"}),
    ("ddim_v", "ddim", 10, {"prediction_type": "v_prediction"}),
    ("ddim_zero_snr", "ddim", 10, {"rescale_betas_zero_snr": True, "prediction_type": "v_prediction", "timestep_spacing": "trailing"}),
    ("ddpm", "ddpm", 50, {}),
    ("ddpm_large", "ddpm", 50, {"variance_type": "fixed_large"}),
    ("ddpm_no_clip", "ddpm", 50, {"clip_sample": False}),
    ("ddpm_thresholding", "ddpm", 50, {"thresholding": True, "dynamic_thresholding_ratio": 0.9, "sample_max_value": 3.0}),
    ("ddpm_sample", "ddpm", 50, {"prediction_type": "sample"}),
    ("ddpm_zero_snr", "ddpm", 50, {"rescale_betas_zero_snr": True, "prediction_type": "v_prediction"}),
    ("dpm", "dpm-solver", 10, {}),
    ("dpm_no_clip", "dpm-solver", 10, {"clip_sample": False}),
    ("dpm_thresholding", "dpm-solver", 10, {"thresholding": True, "dynamic_thresholding_ratio": 0.9, "sample_max_value": 3.0}),
    ("dpm_leading_offset", "dpm-solver", 10, {"timestep_spacing": "leading", "steps_offset": 1}),
    ("dpm_trailing", "dpm-solver", 10, {"timestep_spacing": "trailing"}),
    ("dpm_sample", "dpm-solver", 10, {"prediction_type": "sample"}),
    ("dpm_zero_snr", "dpm-solver", 10, {"rescale_betas_zero_snr": True, "prediction_type": "v_prediction", "timestep_spacing": "trailing"}),
]


def formula(shape, phase):
    """sin(1.3 k + phase) over the flat index k, computed in float64 and stored as float32."""
    k = np.arange(int(np.prod(shape)), dtype=np.float64)
    return torch.from_numpy(np.sin(1.3 * k + phase).astype(np.float32).reshape(shape))


def scheduler_toy_model(x, t):
    return 0.9 * x + 0.05 * (t / 50.0)


def schedulers():
    import diffusers.schedulers.scheduling_ddpm as ddpm_module
    classes = {"ddim": DDIMScheduler, "ddpm": DDPMScheduler, "dpm-solver": DPMSolverMultistepScheduler}
    step = {"i": 0}
    # DDPM draws its noise inside step(): step i gets sin(1.3 k + 0.7 (i + 1)).
    ddpm_module.randn_tensor = lambda shape, **kw: formula(tuple(shape), 0.7 * (step["i"] + 1))
    cases = []
    for name, sampler, steps, fields in SCHEDULER_CASES:
        config = dict(SCHEDULE, **fields)
        s = classes[sampler].from_config(config)  # as a pipeline loads a folder: unknown keys ignored
        s.set_timesteps(steps)
        x = formula(SHAPE, 0.3)
        for i, t in enumerate(s.timesteps):
            step["i"] = i
            x = s.step(scheduler_toy_model(x, int(t)), t, x).prev_sample
        cases.append({"name": name, "sampler": sampler, "steps": steps, "config": config,
                      "timesteps": s.timesteps.tolist(), "result": flat(x)})
        print(f"{name}: timesteps {s.timesteps.tolist()[:4]}…, |x| max {x.abs().max().item():.4f}")
    (OUT / "schedulers.json").write_text(json.dumps({
        "source": f"diffusers {diffusers.__version__}, torch {torch.__version__}: scripts/diffusers_fixtures.py schedulers",
        "shape": list(SHAPE), "cases": cases}))


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "make":
        make()
    elif len(sys.argv) == 2 and sys.argv[1] == "schedulers":
        schedulers()
    elif len(sys.argv) == 2 and sys.argv[1] == "training-step":
        training_step()
    elif len(sys.argv) == 3 and sys.argv[1] == "check-export":
        check_export(sys.argv[2])
    else:
        sys.exit(__doc__)
