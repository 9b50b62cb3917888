#!/usr/bin/env python3
"""The cluster trainer: continues a tabdiffusion training run with PyTorch DDP, on any number of
processes, GPUs or machines, and writes the run back in the same format, so that
`tabdiffusion train --resume`, `sample`, `eval` and the tab take it again (docs/scale.md).

    # one machine, one process (no launcher):
    python scripts/cluster/train.py --state train-state.safetensors --steps 3000
    # one machine, 8 processes; or 4 machines of 8 (run the same line on each, --node-rank 0..3):
    torchrun --nproc-per-node 8 scripts/cluster/train.py --state train-state.safetensors --steps 3000
    torchrun --nnodes 4 --nproc-per-node 8 --node-rank 0 --master-addr HOST --master-port 29500 \\
        scripts/cluster/train.py --state train-state.safetensors --steps 3000

It reads the training-state file without our code: safetensors tensors (`model.*`, `ema.*`,
`adam.m.*`, `adam.v.*`) and JSON metadata (`format`, `config`, `scheduler`, `train` — the run
spec —, `model_card`, `step`, `adam_time`, `rng_position`); see docs/files.md. The model is
diffusers' UNet2DModel, which tests/lockstep.rs shows computes our network; the step is ours
(src/train/mod.rs, src/train/adam.rs, src/spec/rates.rs), field by field:

- the target (ε, v or x₀) and min-SNR-γ weighting of the per-image squared error;
- the β schedule from the state's scheduler config (linear, cosine, zero terminal SNR), ᾱ_t
  as diffusers' DDPMScheduler computes it, which our Schedule equals;
- Adam (β₁ 0.9, β₂ from the spec, ε 1e-8) continuing at the state's step count with its
  moments, the global gradient norm clipped to `grad_clip`;
- the learning rate of `learning_rate_at` (linear warm-up, cosine decay or EDM2's inverse
  square root decay), the EMA decay of `ema_decay_at` (diffusers' warm-up, or EDM2's power EMA);
- random flips, class labels and class dropout for class-conditional models;
- each rank takes a contiguous share of one global batch, as `shares` in src/train/parallel.rs
  does; the batch size is the run's, so the step is the same on any world size that divides
  it (a world size that does not is refused).

A field this script does not know, or a setting it cannot honour, is refused by name rather
than trained differently. Its random draws (indices, flips, t, ε, dropout coins) are torch's,
from a generator seeded by the run's seed and the step, identical on every rank (each takes
its share), so a run gives the same steps on any world size; they are not our ChaCha8 stream.
`--inputs DIR` instead feeds each step's x₀, t and ε from files (the tests' way of making both
sides see the same batches). The state written keeps the run's `rng_position` as it came (or
as `--inputs` gives it), so `train --resume` goes on from there with its own stream.

Each save writes the whole state to a temporary file beside `--out`, then renames it, so a
killed run leaves the last complete save and never half a file.
"""
import argparse
import datetime
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from diffusers import DDPMScheduler, UNet2DModel
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes

STATE_FORMAT = "tabdiffusion-train-state/2"

# The run spec's fields (src/spec/mod.rs, RunSpec) this trainer knows. Those that change a
# training step are honoured below; the others are the CLI's and the tab's (sampling, previews,
# cadences) and travel unchanged.
TRAINING_FIELDS = {
    "batch_size", "learning_rate", "adam_beta_2", "grad_clip", "ema_decay", "ema_power",
    "random_flip", "class_dropout", "min_snr_gamma", "warmup_steps", "decay_steps",
    "inverse_sqrt_decay_from", "seed",
    # These describe how a fresh model was built; the model's own config and scheduler say
    # what it is now, and those are what train.
    "dataset", "preset", "steps", "schedule", "prediction", "timestep_spacing",
    "zero_terminal_snr", "class_conditional",
}
CARRIED_FIELDS = {
    "guidance", "save_every", "preview_every", "preview_steps", "sample_steps", "count",
    "sample_batch", "quality_every", "quality_count", "quality_steps",
}
# Our UNetConfig's fields (src/model/config.rs) and how diffusers' UNet2DModel takes them.
UNET_FIELDS = {
    "sample_size", "in_channels", "out_channels", "block_out_channels", "attention",
    "layers_per_block", "attention_head_dim", "norm_num_groups", "norm_eps", "dropout",
    "flip_sin_to_cos", "freq_shift", "downsample_padding", "center_input_sample",
    "time_embedding_dim", "add_attention", "num_class_embeds",
}
# Scheduler-config fields that change training (the rest are the samplers').
SCHEDULE_TRAINING = {"num_train_timesteps", "beta_start", "beta_end", "beta_schedule",
                     "prediction_type", "rescale_betas_zero_snr"}


class Refusal(Exception):
    """A reason not to train, in words; nothing has been written."""


# ---------------------------------------------------------------------------------------------
# The training-state file

def read_state(path: Path):
    """(metadata, tensors) of a training-state file, checked; Refusal in words otherwise."""
    try:
        size = path.stat().st_size
    except OSError as e:
        raise Refusal(f"{path}: {e.strerror}")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except Exception as e:  # safetensors raises its own error types for a cut file
        raise Refusal(f"{path}: not a complete safetensors file ({size} bytes; half-written, or "
                      f"not a training state): {e}")
    fmt = metadata.get("format")
    if fmt != STATE_FORMAT:
        raise Refusal(f"{path}: not a training-state file of format {STATE_FORMAT} "
                      f"(its format is {fmt!r}); `tabdiffusion train --state` and the tab's "
                      f"'Export the whole run' write one")
    for key in ("config", "scheduler", "train", "model_card", "step", "adam_time", "rng_position"):
        if key not in metadata:
            raise Refusal(f"{path}: the training state has no {key!r}")
    return metadata, tensors


def check_spec(spec: dict):
    """Refuses a run spec with a field this trainer does not know (a newer recipe)."""
    unknown = sorted(set(spec) - TRAINING_FIELDS - CARRIED_FIELDS)
    if unknown:
        raise Refusal(f"the run's recipe has fields this trainer does not know: {', '.join(unknown)}; "
                      "it would train another recipe, so it stops (teach scripts/cluster/train.py them)")
    missing = sorted(TRAINING_FIELDS - set(spec))
    if missing:
        raise Refusal(f"the run's recipe lacks {', '.join(missing)}: a state written before the run "
                      "spec; continue it once with `tabdiffusion train --resume` to bring it up to date")
    for name in ("learning_rate", "grad_clip"):
        if not (isinstance(spec[name], (int, float)) and math.isfinite(spec[name]) and spec[name] > 0):
            raise Refusal(f"{name} is {spec[name]!r}; it must be a positive number")
    if not 0 <= spec["adam_beta_2"] < 1:
        raise Refusal(f"adam_beta_2 is {spec['adam_beta_2']}; it must be in [0, 1)")
    if spec["decay_steps"] is not None and spec["inverse_sqrt_decay_from"] is not None:
        raise Refusal("decay_steps and inverse_sqrt_decay_from are two decays; a run has one")


def unet_from_config(config: dict) -> UNet2DModel:
    """diffusers' UNet2DModel of our UNetConfig (src/model/diffusers.rs, to_diffusers_config)."""
    unknown = sorted(set(config) - UNET_FIELDS)
    if unknown:
        raise Refusal(f"the model config has fields this trainer does not know: {', '.join(unknown)}")
    attention = config["attention"]
    return UNet2DModel(
        sample_size=config["sample_size"], in_channels=config["in_channels"],
        out_channels=config["out_channels"], block_out_channels=tuple(config["block_out_channels"]),
        down_block_types=tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attention),
        up_block_types=tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention)),
        layers_per_block=config["layers_per_block"], attention_head_dim=config.get("attention_head_dim"),
        norm_num_groups=config.get("norm_num_groups", 32), norm_eps=config.get("norm_eps", 1e-5),
        dropout=config.get("dropout", 0.0), flip_sin_to_cos=config.get("flip_sin_to_cos", True),
        freq_shift=config.get("freq_shift", 0.0), downsample_padding=config.get("downsample_padding", 1),
        center_input_sample=config.get("center_input_sample", False),
        time_embedding_dim=config.get("time_embedding_dim"), add_attention=config.get("add_attention", True),
        num_class_embeds=config.get("num_class_embeds"),
    )


def adam_names(model: torch.nn.Module):
    """For each parameter's state-dict name: the key of its Adam moments in our file and whether
    they are stored transposed. Ours are keyed by burn's module path, whose norms name their
    parameters gamma and beta, and flattened in burn's layout, where a Linear weight is
    [in, out] (src/train/adam.rs, src/model/state_dict.rs)."""
    names = {}
    for module_name, module in model.named_modules():
        for leaf, _ in module.named_parameters(recurse=False):
            name = f"{module_name}.{leaf}" if module_name else leaf
            key = name
            if isinstance(module, (torch.nn.GroupNorm, torch.nn.LayerNorm)):
                key = f"{module_name}.{ {'weight': 'gamma', 'bias': 'beta'}[leaf] }"
            names[name] = (key, isinstance(module, torch.nn.Linear) and leaf == "weight")
    return names


def to_ours(moment: torch.Tensor, transposed: bool) -> torch.Tensor:
    return (moment.t() if transposed else moment).contiguous().flatten()


def from_ours(flat: torch.Tensor, param: torch.Tensor, transposed: bool) -> torch.Tensor:
    if transposed:
        return flat.reshape(param.shape[1], param.shape[0]).t().contiguous()
    return flat.reshape(param.shape).clone()


class Run:
    """A training run loaded from a state: the model, its EMA, Adam, the schedule, the recipe."""

    def __init__(self, path: Path):
        self.metadata, tensors = read_state(path)
        meta = self.metadata
        try:
            self.spec = json.loads(meta["train"])
            self.config = json.loads(meta["config"])
            self.scheduler_config = json.loads(meta["scheduler"])
            self.card = json.loads(meta["model_card"])
            self.step, self.adam_time = int(meta["step"]), int(meta["adam_time"])
            int(meta["rng_position"])
        except (ValueError, TypeError) as e:
            raise Refusal(f"{path}: unreadable metadata: {e}")
        check_spec(self.spec)
        self.model = unet_from_config(self.config)
        self.model.train()
        self.ema = {}
        model_tensors = {n[len("model."):]: t for n, t in tensors.items() if n.startswith("model.")}
        ema_tensors = {n[len("ema."):]: t for n, t in tensors.items() if n.startswith("ema.")}
        expected = {n: p.shape for n, p in self.model.named_parameters()}
        for what, got in (("weights", model_tensors), ("EMA weights", ema_tensors)):
            missing = sorted(set(expected) - set(got))
            extra = sorted(set(got) - set(expected))
            shapes = [f"{n} is {list(got[n].shape)}, the model's {list(s)}" for n, s in expected.items()
                      if n in got and got[n].shape != s]
            if missing or extra or shapes:
                raise Refusal(f"{path}: the {what} are not those of the model its config describes "
                              f"(another model's?): missing {missing[:3]}, unexpected {extra[:3]}, {shapes[:3]}")
        self.model.load_state_dict(model_tensors, strict=True)
        self.ema = {n: ema_tensors[n].float().clone() for n in expected}
        # Adam: its moments under our keys (below), its step count.
        spec = self.spec
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=spec["learning_rate"],
                                          betas=(0.9, spec["adam_beta_2"]), eps=1e-8, foreach=False)
        self.names = adam_names(self.model)
        moments = {n[len("adam."):]: t for n, t in tensors.items() if n.startswith("adam.")}
        params = dict(self.model.named_parameters())
        if self.adam_time > 0 or moments:
            for name, param in params.items():
                key, transposed = self.names[name]
                try:
                    m, v = moments.pop(f"m.{key}"), moments.pop(f"v.{key}")
                except KeyError:
                    raise Refusal(f"{path}: Adam's moments of {key} are missing (another model's state?)")
                if m.numel() != param.numel() or v.numel() != param.numel():
                    raise Refusal(f"{path}: Adam's moments of {key} have {m.numel()} values; the parameter has {param.numel()}")
                self.optimizer.state[param] = {
                    "step": torch.tensor(float(self.adam_time)),
                    "exp_avg": from_ours(m.float(), param, transposed),
                    "exp_avg_sq": from_ours(v.float(), param, transposed),
                }
            if moments:
                raise Refusal(f"{path}: Adam's {sorted(moments)[0]} belongs to no parameter of this model")
        # The schedule, as diffusers computes it (our Schedule equals it, src/diffusion/schedule.rs).
        unknown = set(self.scheduler_config) - SCHEDULE_TRAINING - {
            "clip_sample", "clip_sample_range", "thresholding", "dynamic_thresholding_ratio",
            "sample_max_value", "set_alpha_to_one", "steps_offset", "timestep_spacing", "variance_type"}
        if unknown:
            raise Refusal(f"the scheduler config has fields this trainer does not know: {', '.join(sorted(unknown))}")
        sc = self.scheduler_config
        scheduler = DDPMScheduler(
            num_train_timesteps=sc["num_train_timesteps"], beta_start=sc["beta_start"], beta_end=sc["beta_end"],
            beta_schedule=sc["beta_schedule"], prediction_type=sc["prediction_type"],
            rescale_betas_zero_snr=sc.get("rescale_betas_zero_snr", False))
        self.alphas_cumprod = scheduler.alphas_cumprod.double()  # float32 values, widened as ours
        self.prediction = sc["prediction_type"]
        if self.prediction not in ("epsilon", "v_prediction", "sample"):
            raise Refusal(f"prediction_type {self.prediction!r} is not one this trainer knows")
        self.num_classes = None if self.config.get("num_class_embeds") is None else self.config["num_class_embeds"] - 1

    # ----- the recipe, as src/spec/rates.rs has it

    def learning_rate_at(self, step: int) -> float:
        s = self.spec
        warm_up = step / s["warmup_steps"] if step < s["warmup_steps"] else 1.0
        if s["decay_steps"] is not None:
            progress = min(max(step - s["warmup_steps"], 0) / max(s["decay_steps"] - s["warmup_steps"], 1), 1.0)
            decay = 0.5 * (1.0 + math.cos(math.pi * progress))
        elif s["inverse_sqrt_decay_from"] is not None:
            start = s["inverse_sqrt_decay_from"]
            decay = math.sqrt(start / max(step, start))
        else:
            decay = 1.0
        return s["learning_rate"] * warm_up * decay

    def ema_decay_at(self, step: int) -> float:
        s = self.spec
        if s["ema_power"] is not None:
            return (1.0 - 1.0 / max(step + 1, 1)) ** (s["ema_power"] + 1.0)
        return min(s["ema_decay"], (1.0 + step) / (10.0 + step))

    # ----- one step (src/train/mod.rs, denoising_loss; src/diffusion/forward.rs)

    def loss(self, model, x0, noise, t, classes):
        ab = self.alphas_cumprod[t]
        signal = ab.sqrt().float().view(-1, 1, 1, 1)
        sigma = (1.0 - ab).sqrt().float().view(-1, 1, 1, 1)
        x_t = x0 * signal + noise * sigma
        target = {"epsilon": noise, "sample": x0, "v_prediction": noise * signal - x0 * sigma}[self.prediction]
        output = model(x_t, t, class_labels=classes).sample
        gamma = self.spec["min_snr_gamma"]
        if gamma is None:
            return ((output - target) ** 2).mean()
        snr = ab / (1.0 - ab)
        clipped = snr.clamp(max=gamma)
        weight = {"epsilon": clipped / snr, "sample": clipped, "v_prediction": clipped / (snr + 1.0)}[self.prediction]
        per_image = ((output - target) ** 2).flatten(1).mean(1)
        return (per_image * weight.float()).mean()

    def apply(self, lr: float):
        """Clip, Adam, EMA, as src/train/mod.rs's apply (the rate and decay of this step)."""
        params = [p for p in self.model.parameters()]
        torch.nn.utils.clip_grad_norm_(params, self.spec["grad_clip"])
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        decay = self.ema_decay_at(self.step)
        with torch.no_grad():
            for name, p in self.model.named_parameters():
                e = self.ema[name]
                e.copy_(e * decay + p.detach().cpu() * (1.0 - decay))
        self.step += 1
        self.adam_time += 1

    # ----- writing it back

    def state_bytes(self, rng_position: str) -> bytes:
        tensors = {}
        for name, p in self.model.named_parameters():
            tensors[f"model.{name}"] = p.detach().cpu().float().contiguous()
            tensors[f"ema.{name}"] = self.ema[name].contiguous()
            state = self.optimizer.state.get(p)
            key, transposed = self.names[name]
            if state:
                tensors[f"adam.m.{key}"] = to_ours(state["exp_avg"].cpu().float(), transposed)
                tensors[f"adam.v.{key}"] = to_ours(state["exp_avg_sq"].cpu().float(), transposed)
        card = dict(self.card, steps=self.step, images_seen=self.step * self.spec["batch_size"])
        metadata = dict(self.metadata, model_card=json.dumps(card), step=str(self.step),
                        adam_time=str(self.adam_time), rng_position=rng_position)
        return safetensors_bytes(tensors, metadata=metadata)


def write_atomic(path: Path, data: bytes):
    """Writes beside `path`, flushes, renames over it: never half a file at `path`."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# Data

def load_train_split(folder: Path):
    """The training images (uint8 [N, C, H, W]) and labels (uint8 [N] or None) of a tiled
    dataset (`tabdiffusion data`'s layout, src/data/tiles.rs: manifest.json, PNG sprite sheets
    of up to 100 × 100 images, row-major; labels one byte each)."""
    from PIL import Image
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except OSError as e:
        raise Refusal(f"{folder}: no dataset here ({e.strerror}); `tabdiffusion data` makes one")
    h, w, c = manifest["height"], manifest["width"], manifest["channels"]
    split = manifest["train"]
    count = split["count"]
    images = []
    for name in split["tiles"]:
        sheet = np.asarray(Image.open(folder / name).convert("L" if c == 1 else "RGB"))
        sheet = sheet.reshape(sheet.shape[0], sheet.shape[1], c)
        columns = sheet.shape[1] // w
        for k in range(columns * (sheet.shape[0] // h)):
            if len(images) == count:
                break
            y, x = (k // columns) * h, (k % columns) * w
            images.append(sheet[y:y + h, x:x + w].transpose(2, 0, 1))
    if len(images) != count:
        raise Refusal(f"{folder}: the manifest promises {count} training images, the tiles hold {len(images)}")
    labels = None
    if split.get("labels"):
        labels = np.frombuffer((folder / split["labels"]).read_bytes(), dtype=np.uint8)[:count]
    return manifest["name"], np.stack(images), labels


# ---------------------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state", type=Path, required=True, help="the training state to continue")
    parser.add_argument("--out", type=Path, help="where to write the run (default: --state itself)")
    parser.add_argument("--steps", type=int, required=True, help="train up to this many steps in all")
    parser.add_argument("--data", type=Path, help="tiled dataset folder (default: www/data/<the run's dataset>)")
    parser.add_argument("--limit", type=int, help="use only the first N training images")
    parser.add_argument("--save-every", type=int, default=None,
                        help="write the state every N steps and at the end (default: the run's save_every)")
    parser.add_argument("--inputs", type=Path,
                        help="each step's x0, t, ε (and classes, rng positions) from files instead of draws")
    parser.add_argument("--losses", type=Path, help="append each step's loss as JSON lines here (rank 0)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per process")
    args = parser.parse_args()

    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    out = args.out or args.state
    try:
        if args.threads:
            torch.set_num_threads(args.threads)
        run = Run(args.state)
        batch = run.spec["batch_size"]
        if batch % world:
            raise Refusal(f"a world of {world} processes does not divide the run's batch of {batch} images: "
                          f"each process takes an equal share of one batch; choose a world size that divides "
                          f"{batch} (the batch is the recipe's and stays)")
        if args.steps <= run.step:
            raise Refusal(f"the run is at step {run.step} already; ask for more with --steps")
        if out.exists() and out.resolve() != args.state.resolve():
            try:
                theirs = read_state(out)[0]
            except Refusal:
                theirs = None
            if theirs is None or any(theirs.get(k) != run.metadata[k] for k in ("config", "scheduler", "train")):
                raise Refusal(f"{out} holds another run (or no run); it is not overwritten: pass another --out")
        inputs = None
        if args.inputs:
            inputs = {n: np.load(args.inputs / f"{n}.npy") for n in ("x0", "timesteps", "noise")}
            positions = (args.inputs / "rng_positions.txt").read_text().split()
            steps = args.steps - run.step
            if len(inputs["x0"]) < steps or len(positions) < steps or inputs["x0"].shape[1] != batch:
                raise Refusal(f"{args.inputs}: inputs for {len(inputs['x0'])} steps of batch "
                              f"{inputs['x0'].shape[1]}; this run needs {steps} of {batch}")
            if run.num_classes is not None:
                raise Refusal("--inputs feeds unconditional models only")
            data, labels = None, None
        else:
            folder = args.data or Path("www/data") / run.spec["dataset"]
            name, data, labels = load_train_split(folder)
            if args.limit:
                data, labels = data[:args.limit], None if labels is None else labels[:args.limit]
            if name != run.card.get("dataset"):
                raise Refusal(f"the run was trained on {run.card.get('dataset')}, but {folder} is {name}")
            c, s = run.config["in_channels"], run.config["sample_size"]
            if data.shape[1:] != (c, s, s):
                raise Refusal(f"the model takes {s}×{s}×{c} images but {folder} has "
                              f"{data.shape[2]}×{data.shape[3]}×{data.shape[1]}")
            if run.num_classes is not None and (labels is None or int(labels.max()) >= run.num_classes):
                raise Refusal(f"{folder}: the model is class-conditional on {run.num_classes} classes; "
                              "the dataset's labels do not fit")
            data = torch.from_numpy(data)
    except Refusal as e:
        print(f"scripts/cluster/train.py: {e}", file=sys.stderr)
        sys.exit(2)

    use_cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
    if world > 1:
        dist.init_process_group("nccl" if use_cuda else "gloo", timeout=datetime.timedelta(minutes=10))
    run.model.to(device)
    for state in run.optimizer.state.values():
        for k in ("exp_avg", "exp_avg_sq"):
            state[k] = state[k].to(device)
    model = run.model
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(run.model, device_ids=[local_rank] if use_cuda else None,
                                                          broadcast_buffers=False)
    share = batch // world
    start = rank * share  # contiguous shares, rank order (src/train/parallel.rs, shares)
    save_every = args.save_every if args.save_every is not None else run.spec["save_every"]
    rng_position = run.metadata["rng_position"]
    first, began = run.step, time.perf_counter()
    log = open(args.losses, "a") if args.losses and rank == 0 else None
    T = len(run.alphas_cumprod)
    while run.step < args.steps:
        k = run.step - first
        classes = None
        if inputs is not None:
            x0 = torch.from_numpy(inputs["x0"][k]).float()
            t = torch.from_numpy(inputs["timesteps"][k]).long()
            noise = torch.from_numpy(inputs["noise"][k]).float()
            rng_position = positions[k]
        else:
            # The whole batch's draws from one generator per step, the same on every rank.
            g = torch.Generator().manual_seed((run.spec["seed"] * 1_000_003 + run.step) % (2 ** 63))
            index = torch.randint(0, len(data), (batch,), generator=g)
            x0 = data[index].float() / 127.5 - 1.0
            if run.spec["random_flip"]:
                flip = torch.rand(batch, generator=g) < 0.5
                x0 = torch.where(flip.view(-1, 1, 1, 1), x0.flip(3), x0)
            t = torch.randint(0, T, (batch,), generator=g)
            noise = torch.randn(x0.shape, generator=g)
            if run.num_classes is not None:
                classes = torch.from_numpy(labels[index.numpy()].astype(np.int64))
                dropped = torch.rand(batch, generator=g) < run.spec["class_dropout"]
                classes = torch.where(dropped, torch.full_like(classes, run.num_classes), classes)
        sl = slice(start, start + share)
        lr = run.learning_rate_at(run.step)
        loss = run.loss(model, x0[sl].to(device), noise[sl].to(device), t[sl].to(device),
                        None if classes is None else classes[sl].to(device))
        loss.backward()  # DDP averages the shares' gradients: the global batch's mean loss
        run.apply(lr)
        shown = loss.detach().clone()
        if world > 1:
            dist.all_reduce(shown)
            shown /= world
        if rank == 0:
            line = {"step": run.step, "loss": shown.item(), "lr": lr,
                    "images_per_s": round((run.step - first) * batch / (time.perf_counter() - began), 2)}
            if log:
                log.write(json.dumps(line) + "\n")
                log.flush()
            if run.step == args.steps or run.step % 10 == 0:
                print(json.dumps(line), flush=True)
            if run.step == args.steps or (save_every and run.step % save_every == 0):
                write_atomic(out, run.state_bytes(rng_position))
    if rank == 0:
        print(json.dumps({"out": str(out), "step": run.step, "world": world,
                          "seconds": round(time.perf_counter() - began, 1), "torch": torch.__version__}), flush=True)
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
