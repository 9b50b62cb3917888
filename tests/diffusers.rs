//! The diffusion core against diffusers: every expected value here was computed by PyTorch +
//! diffusers (the version is recorded in the fixture) with `scripts/fixtures/diffusers_fixtures.py`, and
//! is kept in tests/fixtures/diffusers/.

use std::path::PathBuf;

use burn::tensor::{Device, Tensor, TensorData};
use serde_json::Value;
use tabdiffusion::diffusion::{
    BetaSchedule, Ddim, Ddpm, DpmSolver, Prediction, Schedule, ScheduleConfig, Spacing, Variance, ddim_timesteps,
    dpm_solver_timesteps, prediction_loss, q_sample,
};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/diffusers")
}

fn reference() -> Value {
    let text = std::fs::read_to_string(fixtures().join("reference.json")).expect("fixture present");
    serde_json::from_str(&text).expect("fixture is JSON")
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().expect("array").iter().map(|x| x.as_f64().expect("number")).collect()
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array().expect("array").iter().map(|x| x.as_u64().expect("integer") as usize).collect()
}

fn tensor(values: &Value, shape: &Value) -> Tensor<4> {
    let values: Vec<f32> = floats(values).into_iter().map(|v| v as f32).collect();
    let shape = usizes(shape);
    Tensor::from_data(TensorData::new(values, [shape[0], shape[1], shape[2], shape[3]]), &Device::flex())
}

fn values(t: Tensor<4>) -> Vec<f64> {
    t.into_data().try_to_vec::<f32>().unwrap().into_iter().map(f64::from).collect()
}

/// Largest |a − b|, after checking the lengths agree.
fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

fn prediction(name: &str) -> Prediction {
    serde_json::from_value(Value::String(name.into())).unwrap()
}

fn schedule(prediction: Prediction) -> Schedule {
    Schedule::new(ScheduleConfig { prediction_type: prediction, ..Default::default() })
}

#[test]
fn schedules_match_ddpm_scheduler_alphas_cumprod() {
    // DDPMScheduler(beta_schedule="linear" | "squaredcos_cap_v2").betas / .alphas_cumprod
    let r = reference();
    for (name, kind) in [("linear", BetaSchedule::Linear), ("cosine", BetaSchedule::Cosine)] {
        let s = Schedule::new(ScheduleConfig { beta_schedule: kind, ..Default::default() });
        let expected = &r["schedules"][name];
        let betas = max_diff(&s.betas, &floats(&expected["betas"]));
        let alphas_cumprod = max_diff(&s.alphas_cumprod, &floats(&expected["alphas_cumprod"]));
        assert!(betas < 1e-6 && alphas_cumprod < 1e-6, "{name}: β off by {betas:e}, ᾱ by {alphas_cumprod:e}");
    }
}

#[test]
fn timestep_spacings_match_set_timesteps() {
    // DDIMScheduler / DPMSolverMultistepScheduler(timestep_spacing=…).set_timesteps(n).timesteps
    let r = reference();
    for (name, spacing) in [("leading", Spacing::Leading), ("trailing", Spacing::Trailing), ("linspace", Spacing::Linspace)] {
        for n in [10, 30, 50] {
            let ddim = usizes(&r["spacings"]["ddim"][name][n.to_string()]);
            assert_eq!(ddim_timesteps(spacing, 1000, n, 0), ddim, "DDIM {name} {n}");
            let dpm = usizes(&r["spacings"]["dpm_solver"][name][n.to_string()]);
            assert_eq!(dpm_solver_timesteps(spacing, 1000, n, 0), dpm, "DPM-Solver {name} {n}");
        }
    }
}

#[test]
fn one_ddim_step_matches_for_every_prediction_type() {
    // DDIMScheduler(prediction_type=…).step(model_output, t, sample, eta, variance_noise)
    let r = &reference()["steps"];
    let (sample, output, noise) =
        (tensor(&r["sample"], &r["shape"]), tensor(&r["model_output"], &r["shape"]), tensor(&r["noise"], &r["shape"]));
    for case in r["ddim"].as_array().unwrap() {
        let s = schedule(prediction(case["prediction_type"].as_str().unwrap()));
        let eta = case["eta"].as_f64().unwrap();
        let ddim = Ddim::new(&s, case["num_inference_steps"].as_u64().unwrap() as usize, eta, Spacing::Leading);
        let t = case["t"].as_u64().unwrap() as usize;
        let i = ddim.timesteps().iter().position(|&x| x == t).unwrap();
        let out = ddim.step(i, output.clone(), sample.clone(), Some(noise.clone()));
        let prev = max_diff(&values(out.prev_sample), &floats(&case["prev_sample"]));
        let x0 = max_diff(&values(out.pred_x0), &floats(&case["pred_x0"]));
        assert!(prev < 1e-5 && x0 < 1e-5, "{case:.80}: prev off by {prev:e}, x0 by {x0:e}");
    }
}

#[test]
fn one_ddpm_step_has_the_posterior_mean_and_variance() {
    // DDPMScheduler(prediction_type, variance_type).step(...) with its drawn noise recorded;
    // the posterior mean μ̃ and variance of Ho et al. eq. 7 (fixed_small) or β_t (fixed_large).
    let r = &reference()["steps"];
    let (sample, output) = (tensor(&r["sample"], &r["shape"]), tensor(&r["model_output"], &r["shape"]));
    for case in r["ddpm"].as_array().unwrap() {
        let s = schedule(prediction(case["prediction_type"].as_str().unwrap()));
        let variance = match case["variance_type"].as_str().unwrap() {
            "fixed_small" => Variance::FixedSmall,
            _ => Variance::FixedLarge,
        };
        let ddpm = Ddpm::new(&s, variance);
        let t = case["t"].as_u64().unwrap() as usize;
        let i = 999 - t;
        let what = format!("{} {} t={t}", case["prediction_type"], case["variance_type"]);
        if t > 0 {
            let ours = ddpm.posterior(i).step_variance(variance);
            let theirs = case["variance"].as_f64().unwrap();
            // Absolute: diffusers forms β_t = 1 − ᾱ_t/ᾱ_{t−1} in float32, good to ~1e-7 here.
            assert!((ours - theirs).abs() < 1e-6, "{what}: variance {ours} vs {theirs}");
        }
        // With zero noise the step is the posterior mean.
        let zero = Tensor::zeros(sample.dims(), &sample.device());
        let mean = ddpm.step(i, output.clone(), sample.clone(), Some(zero)).prev_sample;
        let d = max_diff(&values(mean), &floats(&case["posterior_mean"]));
        assert!(d < 1e-6, "{what}: posterior mean off by {d:e}");
        let out = ddpm.step(i, output.clone(), sample.clone(), Some(tensor(&case["noise"], &r["shape"])));
        let prev = max_diff(&values(out.prev_sample), &floats(&case["prev_sample"]));
        let x0 = max_diff(&values(out.pred_x0), &floats(&case["pred_x0"]));
        assert!(prev < 1e-5 && x0 < 1e-5, "{what}: prev off by {prev:e}, x0 by {x0:e}");
    }
}

#[test]
fn dpm_solver_runs_match_with_a_known_model() {
    // DPMSolverMultistepScheduler(prediction_type=…) driven by the fixed model
    // m(x, t) = 0.9 x + 0.05 t/1000, 10 and 20 steps, from fixed x_T.
    let r = reference();
    for case in r["dpm_solver_toy"].as_array().unwrap() {
        let s = schedule(prediction(case["prediction_type"].as_str().unwrap()));
        let steps = case["steps"].as_u64().unwrap() as usize;
        let mut solver = DpmSolver::new(&s, steps, Spacing::Linspace);
        assert_eq!(solver.timesteps(), usizes(&case["timesteps"]).as_slice());
        let shape = serde_json::json!([1, 1, 4, 4]);
        let mut x = tensor(&case["x_T"], &shape);
        for i in 0..steps {
            let t = solver.timesteps()[i];
            let output = x.clone().mul_scalar(0.9).add_scalar(0.05 * t as f64 / 1000.0);
            x = solver.step(i, output, x).prev_sample;
        }
        let d = max_diff(&values(x), &floats(&case["result"]));
        assert!(d < 1e-4, "{} {steps} steps: off by {d:e}", case["prediction_type"]);
    }
}

/// A committed diffusers model folder, loaded as a user's would be.
fn load_folder(name: &str) -> (tabdiffusion::model::UNet, tabdiffusion::model::UNetConfig) {
    use tabdiffusion::checkpoint::DiffusersFolder;
    let dir = fixtures().join(name);
    let config = std::fs::read_to_string(dir.join(DiffusersFolder::CONFIG)).unwrap();
    let weights = std::fs::read(dir.join(DiffusersFolder::WEIGHTS)).unwrap();
    let (config, _, checkpoint) = DiffusersFolder::from_files(&config, Some(&weights), None).unwrap();
    (checkpoint.unwrap().load(&Device::flex()).unwrap(), config)
}

#[test]
fn unet2dmodel_folders_load_and_predict_the_same_noise() {
    // UNet2DModel(x, t).sample for unet_a (google/ddpm-cifar10-32's options: padding-0
    // downsampling, [sin, cos] with freq_shift 1, one attention head) and unet_b (diffusers'
    // defaults: [cos, sin], 4-channel heads, no mid-block attention).
    let r = reference();
    for name in ["unet_a", "unet_b"] {
        let (model, _) = load_folder(name);
        let case = &r["unets"][name];
        let t = usizes(&case["timesteps"]);
        let eps = model.forward(tensor(&case["input"], &case["shape"]), &t);
        let d = max_diff(&values(eps), &floats(&case["output"]));
        assert!(d < 1e-4, "{name}: ε off by {d:e}");
    }
}

#[test]
fn a_class_conditional_unet2dmodel_predicts_the_same_noise_for_each_class() {
    // UNet2DModel(num_class_embeds=4)(x, t, class_labels=[0, 2, 3, 1]).sample: the class
    // embedding added to the time embedding, label 3 being our null class.
    let r = reference();
    let (model, config) = load_folder("unet_c");
    assert_eq!((config.num_class_embeds, config.null_class()), (Some(4), Some(3)));
    let case = &r["class_conditional"]["unet_c"];
    let (t, classes) = (usizes(&case["timesteps"]), usizes(&case["class_labels"]));
    let eps = model.forward_classes(tensor(&case["input"], &case["shape"]), &t, Some(&classes));
    let d = max_diff(&values(eps.clone()), &floats(&case["output"]));
    assert!(d < 1e-4, "unet_c: ε off by {d:e}");
    // Without labels the model takes the null class: image 2 (label 3) is unchanged, the others
    // are not.
    let unlabelled = values(model.forward(tensor(&case["input"], &case["shape"]), &t));
    let per_image = unlabelled.len() / 4;
    let image = |v: &[f64], i: usize| v[i * per_image..(i + 1) * per_image].to_vec();
    let expected = floats(&case["output"]);
    assert!(max_diff(&image(&unlabelled, 2), &image(&expected, 2)) < 1e-4);
    assert!(max_diff(&image(&unlabelled, 0), &image(&expected, 0)) > 1e-3);
}

#[test]
fn ten_step_runs_from_fixed_noise_match_the_schedulers() {
    // DDIMScheduler() and DPMSolverMultistepScheduler() (their defaults), 10 steps with unet_a
    // from the same x_T.
    use tabdiffusion::diffusion::{RandomStream, Sampler, SamplerKind};
    let r = reference();
    let (model, config) = load_folder("unet_a");
    let s = Schedule::ddpm();
    let kinds = [
        ("ddim10", SamplerKind::ddim(10)),
        ("dpm_solver10", SamplerKind::DpmSolver { steps: 10, spacing: Spacing::Linspace }),
    ];
    for (name, kind) in kinds {
        let case = &r["runs_unet_a"][name];
        let shape = serde_json::json!([2, config.in_channels, config.sample_size, config.sample_size]);
        let mut sampler = Sampler::new(kind, &s);
        assert_eq!(sampler.timesteps(), usizes(&case["timesteps"]).as_slice(), "{name}");
        let x = sampler.sample(|x, t| model.forward(x, t), tensor(&case["x_T"], &shape), &mut RandomStream::new(0));
        let d = max_diff(&values(x), &floats(&case["result"]));
        assert!(d < 1e-3, "{name}: off by {d:e}");
    }
}

#[test]
fn our_export_loads_in_diffusers_and_gives_the_same_output() {
    // export_check.json: `scripts/fixtures/diffusers_fixtures.py check-export tests/fixtures/diffusers/ours`
    // loaded the folder `tabdiffusion export --model tiny` wrote with
    // UNet2DModel.from_pretrained and DDPMScheduler.from_pretrained, and ran the U-Net.
    use tabdiffusion::checkpoint::{DiffusersFolder, decode, to_bytes};
    let check: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("export_check.json")).unwrap()).unwrap();
    for key in ["missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"] {
        assert_eq!(check["loading_info"][key], serde_json::json!([]), "diffusers reported {key}");
    }
    assert_eq!(check["scheduler"]["class"], "DDPMScheduler");
    let (model, config) = load_folder("ours");
    assert_eq!(burn::module::Module::num_params(&model) as u64, check["parameters"].as_u64().unwrap());
    let eps = model.forward(tensor(&check["input"], &check["shape"]), &usizes(&check["timesteps"]));
    let d = max_diff(&values(eps), &floats(&check["output"]));
    assert!(d < 1e-4, "diffusers and we disagree on our export by {d:e}");

    // The fixture is what the exporter writes today: writing the loaded model again gives the
    // same tensors and metadata (otherwise rerun the script's check-export).
    let dir = fixtures().join("ours");
    let schedule = ScheduleConfig::from_json(&std::fs::read_to_string(dir.join(DiffusersFolder::SCHEDULER)).unwrap()).unwrap();
    // The folder was exported with --clip-sample false --clip-sample-range 2 --steps-offset 1
    // --set-alpha-to-one false: DDPMScheduler.from_pretrained read each field as we wrote it.
    let ours: Value = serde_json::from_str(&schedule.to_json()).unwrap();
    let theirs = check["scheduler"]["config"].as_object().unwrap();
    for (key, value) in ours.as_object().unwrap().iter().filter(|(k, _)| !k.starts_with('_')) {
        assert_eq!(theirs.get(key), Some(value), "diffusers read {key} otherwise");
    }
    assert_eq!((schedule.clip_sample, schedule.steps_offset, schedule.set_alpha_to_one), (false, 1, false));
    let card = Default::default();
    let bytes = pollster::block_on(to_bytes(&model, &config, &schedule, &card)).unwrap();
    let (again, committed) = (decode(&bytes).unwrap(), decode(&std::fs::read(dir.join(DiffusersFolder::WEIGHTS)).unwrap()).unwrap());
    assert!(again.tensors == committed.tensors, "the exported tensors changed");
    assert_eq!((again.config, again.schedule, again.card), (committed.config, committed.schedule, committed.card));
    let (config_json, scheduler_json) = DiffusersFolder::configs(&config, &schedule);
    assert_eq!(config_json, std::fs::read_to_string(dir.join(DiffusersFolder::CONFIG)).unwrap());
    assert_eq!(scheduler_json, std::fs::read_to_string(dir.join(DiffusersFolder::SCHEDULER)).unwrap());
}

#[test]
fn ddpm_cifar10_preset_has_the_parameter_count_diffusers_gives() {
    // sum(p.numel()) of UNet2DModel(**google/ddpm-cifar10-32's config) = 35,746,307.
    use tabdiffusion::model::Preset;
    let expected = reference()["ddpm_cifar10_parameters"].as_u64().unwrap();
    let model = Preset::DdpmCifar10.config().init(&Device::flex());
    assert_eq!(burn::module::Module::num_params(&model) as u64, expected);
}

/// The gradient of one parameter per visited path, as PyTorch lays it out (burn's Linear
/// weights are `[in, out]`, PyTorch's `[out, in]`).
struct NamedGrads<'a> {
    grads: &'a burn::optim::GradientsParams,
    path: Vec<String>,
    out: std::collections::BTreeMap<String, Vec<f64>>,
}

impl burn::module::ModuleVisitor for NamedGrads<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
        let Some(grad) = self.grads.get::<D>(param.id) else { return };
        let grad = if D == 2 { grad.transpose() } else { grad };
        let mut name = self.path.join(".");
        for (burn_name, torch_name) in [(".gamma", ".weight"), (".beta", ".bias")] {
            if let Some(stem) = name.strip_suffix(burn_name) {
                name = format!("{stem}{torch_name}");
            }
        }
        let values = grad.into_data().try_to_vec::<f32>().unwrap().into_iter().map(f64::from).collect();
        self.out.insert(name, values);
    }
}

#[test]
fn one_training_step_has_pytorchs_loss_and_gradients() {
    // DDPM Algorithm 1 on unet_a with given x_0, t and ε: diffusers' add_noise, UNet2DModel,
    // MSE, backward (scripts/fixtures/diffusers_fixtures.py training-step). The trainer runs this
    // same loss (q_sample, forward, prediction_loss) on an autodiff device.
    use burn::module::Module;
    use tabdiffusion::checkpoint::DiffusersFolder;
    let text = std::fs::read_to_string(fixtures().join("training_step.json")).expect("fixture present");
    let r: Value = serde_json::from_str(&text).unwrap();
    let dir = fixtures().join("unet_a");
    let config = std::fs::read_to_string(dir.join(DiffusersFolder::CONFIG)).unwrap();
    let weights = std::fs::read(dir.join(DiffusersFolder::WEIGHTS)).unwrap();
    let (_, schedule, checkpoint) = DiffusersFolder::from_files(&config, Some(&weights), None).unwrap();
    // As Trainer::from_model: weights loaded on the device, made trainable leaves by `train`.
    let model = checkpoint.unwrap().load(&Device::flex()).unwrap().train();
    let device = Device::flex().autodiff();
    let schedule = Schedule::new(schedule);
    let (x0, noise) = (tensor(&r["x0"], &r["shape"]).to_device(&device), tensor(&r["noise"], &r["shape"]).to_device(&device));
    let t = usizes(&r["timesteps"]);
    let x_t = q_sample(&schedule, x0, noise.clone(), &t);
    let loss = prediction_loss(model.forward(x_t, &t), noise);
    let value = f64::from(loss.clone().into_scalar::<f32>());
    let expected = r["loss"].as_f64().unwrap();
    assert!((value - expected).abs() < 1e-5 * expected, "loss {value}, PyTorch {expected}");

    let grads = burn::optim::GradientsParams::from_grads(loss.backward(), &model);
    let mut named = NamedGrads { grads: &grads, path: Vec::new(), out: Default::default() };
    model.visit(&mut named);
    let norm = named.out.values().flatten().map(|g| g * g).sum::<f64>().sqrt();
    let expected_norm = r["grad_norm"].as_f64().unwrap();
    assert!((norm - expected_norm).abs() < 1e-4 * expected_norm, "gradient norm {norm}, PyTorch {expected_norm}");
    let reference = r["grads"].as_object().unwrap();
    assert!(reference.len() >= 5);
    for (name, case) in reference {
        let ours = named.out.get(name).unwrap_or_else(|| panic!("no gradient for {name}"));
        let theirs = floats(&case["grad"]);
        let scale = theirs.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let d = max_diff(ours, &theirs);
        assert!(d < 1e-4 * scale.max(1e-3), "{name}: gradient off by {d:e} (entries up to {scale:e})");
    }
}

/// `sin(1.3 k + phase)` over the flat index k, in f64 then f32: the fixture's inputs.
fn formula(shape: [usize; 4], phase: f64) -> Tensor<4> {
    let values: Vec<f32> = (0..shape.iter().product::<usize>()).map(|k| (1.3 * k as f64 + phase).sin() as f32).collect();
    Tensor::from_data(TensorData::new(values, shape), &Device::flex())
}

#[test]
fn every_scheduler_field_is_honoured_as_diffusers_honours_it() {
    // DDIMScheduler / DDPMScheduler / DPMSolverMultistepScheduler.from_config(case config) on a
    // 50-step schedule, driven by m(x, t) = 0.9 x + 0.05 t/50 from x_T = sin(1.3 k + 0.3); DDPM's
    // step i adds the noise sin(1.3 k + 0.7 (i + 1)) (scripts/fixtures/diffusers_fixtures.py schedulers).
    use tabdiffusion::diffusion::{Sampler, SamplerKind, SamplerName};
    let text = std::fs::read_to_string(fixtures().join("schedulers.json")).expect("fixture present");
    let fixture: Value = serde_json::from_str(&text).unwrap();
    let shape: [usize; 4] = usizes(&fixture["shape"]).try_into().unwrap();
    let cases = fixture["cases"].as_array().unwrap();
    assert!(cases.len() >= 20);
    let mut results = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let config = ScheduleConfig::from_json(&case["config"].to_string()).unwrap();
        let schedule = Schedule::new(config);
        let sampler_name: SamplerName = case["sampler"].as_str().unwrap().parse().unwrap();
        let steps = case["steps"].as_u64().unwrap() as usize;
        let mut sampler = Sampler::new(SamplerKind::new(sampler_name, steps, 0.0, None, &schedule.config), &schedule);
        assert_eq!(sampler.timesteps(), usizes(&case["timesteps"]).as_slice(), "{name}: timesteps");
        let mut x = formula(shape, 0.3);
        for i in 0..sampler.timesteps().len() {
            let t = sampler.timesteps()[i];
            let output = x.clone().mul_scalar(0.9).add_scalar(0.05 * t as f64 / 50.0);
            let noise = sampler.needs_noise(i).then(|| formula(shape, 0.7 * (i + 1) as f64));
            x = sampler.step(i, output, x, noise).prev_sample;
        }
        let ours = values(x);
        let d = max_diff(&ours, &floats(&case["result"]));
        assert!(d < 1e-4, "{name}: off by {d:e}");
        results.push((name, ours));
    }
    // Each field changes the result (else its case tests nothing), except clip_sample under
    // DPM-Solver++, which diffusers' DPMSolverMultistepScheduler does not have.
    let result = |name: &str| &results.iter().find(|(n, _)| *n == name).unwrap().1;
    for (name, ours) in &results {
        let base = match name.split('_').next().unwrap() {
            "ddim" => "ddim",
            "ddpm" => "ddpm",
            _ => "dpm",
        };
        let same = max_diff(ours, result(base)) < 1e-6;
        assert_eq!(same, *name == base || *name == "dpm_no_clip", "{name} against {base}");
    }
}
