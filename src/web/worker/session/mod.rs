//! The browser training session: one async driver, in the page's Web Worker, that owns the
//! device, the data and the trainer. It takes [`Command`]s between steps and reports
//! [`Update`]s; the page never sees tensors and the worker never touches the page. Its state is
//! split by job, each sub-state in a file of its own with its commands: the saved run and its
//! lock (`saved`), training (`training`, `progress`), sampling (`sampling`), the quality chart
//! (`quality`); besides, files (import, export, your images) and the benchmark.

mod bench;
mod files;
mod progress;
mod quality;
mod sampling;
mod training;
mod saved;

use burn::module::Module;
use burn::tensor::Device;

use super::channel::{next_command, send};
use super::gpu::{gpu_lost, lost_gpu, mark_gpu_lost, read_values};
use super::outbox::{Outbox, doing};
use super::saved_run::{HAND_OVER, RUN_LOCK, SAVED_IMAGES, SAVED_RUN};
use crate::checkpoint::DiffusersFolder;
use crate::data::{ImageSet, Manifest, encode_npy};
use crate::diffusion::{Objective, SamplerKind};
use crate::spec::RunSpec;
use crate::train::{Trainer, conditional_classes};
use crate::web::browser::{channel, fetch_bytes, has_webgpu, lock, unstore, yield_now};
use crate::web::kernels::KernelPath;
use crate::web::protocol::{Command, Holder, Notice, Update};
use crate::web::settings::Settings;

/// What the visitor reads when WebGPU is missing or unusable.
const BROWSERS: &str = "Chrome and Edge (113 and later), Safari 26 and Firefox 141 on Windows have WebGPU";

/// The session: what it trains, on what, and what it has shown, in a sub-state per job.
struct Session {
    settings: Settings,
    out: Outbox,
    device: Device,
    /// The WebGPU device under `device` (none on the CPU): for its lost callback, and for the
    /// fault test that destroys it.
    gpu: Option<burn::tensor::wgpu::wgpu::Device>,
    /// "WebGPU" or "CPU".
    backend: &'static str,
    manifest: Manifest,
    data: ImageSet,
    tiles_loaded: usize,
    /// The run saved in this browser, and its lock.
    saved: saved::SavedRun,
    /// The model and its training.
    training: training::Training,
    /// What the Sampling panel sampled last, and the trained example.
    sampling: sampling::Sampling,
    /// The quality chart's reference and last measurement.
    quality: quality::Quality,
}

/// Runs the session until the page closes.
pub async fn run(settings: Settings, out: Outbox) {
    let mut session = match Session::start(settings, out).await {
        Ok(session) => session,
        Err(message) => {
            out.send(Update::Error(message.into()));
            out.send(Update::Status("Could not start.".into()));
            return;
        }
    };
    if let Some(steps) = session.settings.bench {
        match session.bench(steps).await {
            Ok(json) => out.send(Update::Bench(json)),
            Err(message) => out.send(Update::Error(message.into())),
        }
    }
    loop {
        while let Some((command, bytes)) = next_command() {
            if let Err(notice) = session.handle(command, bytes).await {
                out.send(Update::Error(notice));
            }
        }
        if session.tiles_loaded < session.manifest.train.tiles.len().min(session.settings.max_tiles.unwrap_or(usize::MAX)) {
            if let Err(message) = session.load_next_tile().await {
                let images = session.data.len();
                out.send(Update::Error(Notice::new(
                    format!("Loading more of the dataset failed (the connection may have dropped): training goes on with the {images} images that arrived. Reload the page to load the rest."),
                    message,
                )));
                session.tiles_loaded = usize::MAX; // stop trying; train on what arrived
            }
        } else if session.training.running {
            if let Err(notice) = session.train_step().await {
                session.set_running(false);
                out.send(Update::Error(notice));
            }
            yield_now(0).await;
        } else {
            yield_now(50).await;
        }
    }
}

impl Session {
    async fn start(settings: Settings, out: Outbox) -> Result<Self, String> {
        doing("looking for a GPU");
        out.send(Update::Status("Looking for WebGPU…".into()));
        let (device, gpu, backend) = if has_webgpu() {
            // Before the device: the tuned build's tune store opens (the page names it).
            super::tuning::prepare(&crate::web::browser::query_param("tunes").unwrap_or_default()).await;
            match Device::wgpu_options().init_with_setup_async().await {
                Ok((device, setup)) => {
                    setup.device.set_device_lost_callback(|reason, message| {
                        mark_gpu_lost();
                        Outbox.send(Update::Running(false));
                        Outbox.send(Update::Error(Notice { detail: format!("device lost: {reason:?} {message}"), ..lost_gpu() }));
                    });
                    (device, Some(setup.device), "WebGPU")
                }
                Err(e) => {
                    out.send(Update::Banner(Notice::new(
                        format!(
                            "This browser has WebGPU, but it gave this page no GPU to use (the GPU or its driver may be blocklisted, or hardware acceleration is off). Training runs on the CPU instead, which is slow: pick the tiny model in Settings. {BROWSERS}; chrome://gpu tells why it is off."
                        ),
                        e.to_string(),
                    )));
                    (Device::flex(), None, "CPU")
                }
            }
        } else {
            out.send(Update::Banner(Notice::new(
                format!("This browser has no WebGPU, so training runs on the CPU, which is slow: pick the tiny model in Settings. {BROWSERS}."),
                "navigator.gpu is undefined",
            )));
            (Device::flex(), None, "CPU")
        };
        out.send(Update::Backend(backend.into()));
        out.send(Update::Kernels(KernelPath::of_this_build()));

        let dir = settings.spec.dataset.folder();
        doing(format!("loading {}", settings.spec.dataset));
        out.send(Update::Status(format!("Loading {}…", settings.spec.dataset)));
        let manifest_bytes = fetch_bytes(&format!("{dir}/manifest.json")).await.map_err(|e| {
            format!(
                "The dataset is missing ({e}). Prepare it with `scripts/setup` or `tabdiffusion data {0} --out www/data/{0}`, or pick another dataset.",
                settings.spec.dataset
            )
        })?;
        let manifest: Manifest =
            serde_json::from_slice(&manifest_bytes).map_err(|e| format!("{dir}/manifest.json is not a dataset manifest: {e}"))?;
        let labels = fetch_bytes(&format!("{dir}/{}", manifest.train.labels)).await?;
        manifest.train.check_labels(&labels).map_err(|e| format!("{dir}: {e}"))?;
        let data = ImageSet { height: manifest.height, width: manifest.width, channels: manifest.channels, pixels: Vec::new(), labels };

        let spec = settings.spec.clone();
        let classes = match spec.class_conditional {
            true => Some(
                conditional_classes(manifest.classes.len(), &data.labels)
                    .map_err(|e| format!("{} has {e}: a class-conditional model cannot train on it.", manifest.name))?,
            ),
            false => None,
        };
        let model_config =
            spec.model_config(manifest.height, manifest.channels, classes).map_err(|e| format!("{e}: pick another model in Settings."))?;
        let spec = match gpu.as_ref().map(|gpu| gpu.limits().max_storage_buffer_binding_size) {
            Some(buffer) if model_config.largest_batch_in(buffer) < spec.batch_size => {
                let fits = model_config.largest_batch_in(buffer);
                out.send(Update::Banner(Notice::new(
                    format!(
                        "This GPU takes at most {fits} images per step of {} (its largest buffer is {:.0} MB), so the run trains on batches of {fits}, not {}.",
                        settings.preset,
                        buffer as f64 / 1e6,
                        spec.batch_size
                    ),
                    "",
                )));
                spec.with_batch_size(fits)
            }
            _ => spec,
        };
        let trainer = Trainer::new(model_config, spec.clone(), &device).with_schedule(spec.schedule_config());
        let model_name = settings.preset.name().to_string();
        let mut session = Self {
            settings,
            out,
            device,
            gpu,
            backend,
            manifest,
            data,
            tiles_loaded: 0,
            saved: saved::SavedRun::default(),
            training: training::Training::new(trainer, model_name, &spec),
            sampling: sampling::Sampling { last: None, guidance: spec.guidance, example: None },
            quality: quality::Quality::default(),
        };
        session.load_next_tile().await?;
        // One tab trains and saves the run; another one opened beside it samples from the
        // last save until it takes the run over.
        // A reload's previous worker may still be letting go of the lock for a moment.
        for _ in 0..20 {
            session.saved.lock = lock(RUN_LOCK, false).await?;
            if session.saved.lock.is_some() {
                break;
            }
            yield_now(250).await;
        }
        session.saved.tabs = channel(RUN_LOCK, |message| {
            if message == HAND_OVER {
                send(Command::HandOver, Vec::new());
            }
        })
        .ok();
        out.send(Update::Holder(if session.saved.lock.is_some() { Holder::ThisTab } else { Holder::OtherTab }));
        let resumed = match session.restore().await {
            Ok(resumed) => resumed,
            Err(message) => {
                out.send(Update::Banner(Notice::new(
                    "Your saved run could not be read, so this is a new one. Reset removes the saved run.",
                    message,
                )));
                false
            }
        };
        session.show_card();
        session.show_dataset();
        out.send(Update::Ready);
        out.send(Update::Status(if resumed {
            format!("Resumed your saved run at step {}. Press Train to continue, or Reset to start over.", session.training.trainer.step)
        } else {
            "Ready. Press Train.".into()
        }));
        Ok(session)
    }

    fn show_card(&self) {
        let c = &self.training.trainer.model_config;
        let schedule = &self.training.trainer.schedule.config;
        let params = self.training.trainer.model.num_params();
        let (weights, training) = self.training.trainer.memory_bytes();
        let objective = Objective::new(schedule, self.training.trainer.config.min_snr_gamma);
        let text = format!(
            "{} · {params} parameters ({:.1} MB of weights; training holds ~{:.0} MB: weights, gradients, Adam's two moments, EMA) · {}×{}×{} · channels {:?} · trains the {} · {} · trained {} steps{}{}",
            self.training.model_name,
            weights as f64 / 1e6,
            training as f64 / 1e6,
            c.sample_size,
            c.sample_size,
            c.in_channels,
            c.block_out_channels,
            objective.describe(),
            self.training.trainer.config.describe(),
            self.training.trainer.step,
            match &self.training.untrainable {
                None => format!(" on {}", self.manifest.name),
                Some(why) => format!(" · {why}"),
            },
            self.quality_line()
        );
        self.out.send(Update::ModelCard { text, objective });
        // The settings panel shows what the run trains with.
        let spec = RunSpec {
            schedule: schedule.beta_schedule,
            prediction: schedule.prediction_type,
            class_conditional: c.num_classes().is_some(),
            ..self.training.trainer.config.clone()
        };
        self.out.send(Update::RunSpec { preset: self.training.model_name.parse().ok(), spec });
    }

    fn set_running(&mut self, running: bool) {
        self.training.running = running;
        self.out.send(Update::Running(running));
    }

    async fn handle(&mut self, command: Command, bytes: Vec<Vec<u8>>) -> Result<(), Notice> {
        doing(match &command {
            Command::Train => "starting to train",
            Command::Pause => "pausing and saving the run",
            Command::Sample(_) => "sampling",
            Command::Compare { .. } => "sampling DDPM-1000 beside DDIM-50",
            Command::Forward { .. } => "drawing the forward process",
            Command::Export | Command::ExportDiffusers => "exporting the weights",
            Command::ExportRun => "exporting the run",
            Command::Import(_) => "importing weights",
            Command::LoadExample => "loading the trained example",
            Command::UseImages(_) => "reading your images",
            Command::DownloadSamples => "saving the samples",
            Command::Quality => "measuring sample quality",
            Command::Forget => "removing the saved run",
            Command::TakeOver => "taking the run over from another tab",
            Command::HandOver => "handing the run over to another tab",
        });
        match command {
            Command::Train => {
                if let Some(why) = &self.training.untrainable {
                    return Err(format!("This model cannot train here: {why}.").into());
                }
                if self.saved.lock.is_none() {
                    return Err("This run is open in another tab, which trains and saves it: press Take over to train it here.".into());
                }
                if gpu_lost() {
                    return Err(lost_gpu());
                }
                let step = self.training.trainer.step + 1;
                if self.settings.tuned_panic_at == Some(step) && KernelPath::of_this_build() == KernelPath::Tuned {
                    panic!("?test_tuned_panic_at={step}: a panic injected in the tuned build as training step {step} starts (the page's test of its fallback)");
                }
                self.out.send(Update::Error(Notice::default()));
                self.measure_fixed_batch().await?;
                self.training.restart_loop(&self.settings.spec);
                self.set_running(true);
                self.out.send(Update::Status(KernelPath::of_this_build().training_status().into()));
            }
            Command::Pause => {
                self.set_running(false);
                self.measure_fixed_batch().await?;
                self.show_card();
                self.save().await?;
                self.out.send(Update::Status(format!("Paused at step {} (saved in this browser).", self.training.trainer.step)));
            }
            Command::TakeOver => self.take_over().await?,
            Command::HandOver => self.hand_over().await,
            Command::Forget => {
                if self.saved.lock.is_none() {
                    return Err("This run is open in another tab: take it over first, then Reset.".into());
                }
                self.set_running(false);
                unstore(SAVED_RUN).await?;
                unstore(SAVED_IMAGES).await?;
                self.out.send(Update::Forgotten);
            }
            Command::Sample(choice) => {
                self.sampling.guidance = choice.guidance;
                let classes = choice.class.map(|c| vec![c]);
                let mut model = self.sample_model(choice.example)?;
                model.schedule.config.clip_sample = choice.clip_sample.unwrap_or(model.schedule.config.clip_sample);
                let kind = SamplerKind::new(choice.sampler, choice.steps.max(1), choice.eta, choice.spacing, &model.schedule.config);
                let what = if choice.example { "Sampling the trained example" } else { "Sampling" };
                self.sample(kind, &model, what, true, classes).await?
            }
            Command::Compare { example } => self.compare(&self.sample_model(example)?).await?,
            Command::Forward { index, t } => self.forward(index, t).await?,
            Command::Export => {
                self.out.send(Update::Status("Exporting…".into()));
                let bytes = self.weights().await?;
                let name = format!("{}.safetensors", self.export_name());
                self.out.send(Update::Status(format!("Exported {name} ({} bytes).", bytes.len())));
                self.out.send_with(Update::Download { name, mime: "application/octet-stream".into() }, vec![bytes]);
            }
            Command::ExportRun => {
                self.out.send(Update::Status("Exporting…".into()));
                let bytes = self.run_bytes().await?;
                let name = format!("{}-run.safetensors", self.export_name());
                self.out.send(Update::Status(format!(
                    "Exported {name} ({} bytes), the whole run: continue it with `tabdiffusion train --resume {name}`, or on a PyTorch cluster (docs/scale.md).",
                    bytes.len()
                )));
                self.out.send_with(Update::Download { name, mime: "application/octet-stream".into() }, vec![bytes]);
            }
            Command::ExportDiffusers => {
                self.out.send(Update::Status("Exporting…".into()));
                let bytes = self.weights().await?;
                let folder = self.export_name();
                let zip = DiffusersFolder::zip(&folder, &self.training.trainer.model_config, &self.training.trainer.schedule.config, &bytes);
                let name = format!("{folder}.zip");
                self.out.send(Update::Status(format!(
                    "Exported {name} ({} bytes): unzip it and load the folder with UNet2DModel.from_pretrained(\"{folder}\").",
                    zip.len()
                )));
                self.out.send_with(Update::Download { name, mime: "application/zip".into() }, vec![zip]);
            }
            Command::Import(names) => self.import(names.into_iter().zip(bytes).collect())?,
            Command::LoadExample => self.load_example().await?,
            Command::UseImages(names) => self.use_images(names.into_iter().zip(bytes).collect()).await?,
            Command::Quality => {
                if let Err(message) = self.measure_quality().await {
                    self.out.send(Update::QualityNote(message));
                }
            }
            Command::DownloadSamples => {
                let (shape, values) = self.sampling.last.as_ref().ok_or("Sample first.")?;
                let npy = encode_npy(shape, values);
                self.out.send_with(Update::Download { name: "samples.npy".into(), mime: "application/octet-stream".into() }, vec![npy]);
            }
        }
        Ok(())
    }
}
