//! The browser training session: one async driver, in the page's Web Worker, that owns the
//! device, the data and the trainer. It takes [`Command`]s between steps and reports
//! [`Update`]s; the page never sees tensors and the worker never touches the page.

use std::cell::RefCell;
use std::collections::VecDeque;

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use super::browser::{HeldLock, StoreError, channel, fetch_bytes, fetch_bytes_with_progress, has_webgpu, lock, now_ms, store, stored, unstore, yield_now};
use super::protocol::{Canvas, Command, Holder, Notice, Picture, RunSettings, SamplerChoice, Update};
use super::worker::{Outbox, doing};
use crate::checkpoint::{self, DiffusersFolder, ModelCard};
use crate::data::{
    ImageSet, Manifest, decode_tile, encode_npy, images_from_upload, limits, tile_count, upload_from_bytes, upload_to_bytes, values_grid,
};
use crate::diffusion::{BetaSchedule, Noise, SamplerKind, ScheduleConfig, Variance, q_sample};
use crate::model::Preset;
use crate::pipeline::{BenchReport, Guidance, SampleRun};
use crate::train::{TrainConfig, Trainer, state_metadata};

/// The training run in the browser's storage (OPFS): a training-state file like the CLI's
/// `--state`, with the tab's own keys (`tab_*`) in its metadata.
const SAVED_RUN: &str = "tabdiffusion-run.safetensors";

/// The user's own images, decoded, kept beside the run (`data::upload_to_bytes`).
const SAVED_IMAGES: &str = "tabdiffusion-images.safetensors";

/// The dataset name of the user's own images (in the manifest and the saved run).
const YOUR_IMAGES: &str = "your images";

/// The Web Lock that one tab at a time holds to train and save the run (the saved run is one
/// per site), and the channel on which another tab asks for it.
const RUN_LOCK: &str = "tabdiffusion-run";
const HAND_OVER: &str = "hand over";

/// Set by the GPU's device-lost callback: nothing is read from or saved off a lost GPU.
static GPU_LOST: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn gpu_lost() -> bool {
    GPU_LOST.load(std::sync::atomic::Ordering::Relaxed)
}

/// What the page says once the GPU is lost (the device-lost callback, and every later try).
pub fn lost_gpu() -> Notice {
    Notice::new(
        "The GPU was lost (its driver restarted, another program took it, or it ran out of memory): training stopped. Your run is saved in this browser as of its last save; reload the page to resume it, with a smaller batch (?batch=8) if memory ran out.",
        "",
    )
    .with_reload()
}

/// What the visitor reads when WebGPU is missing or unusable.
const BROWSERS: &str = "Chrome and Edge (113 and later), Safari 26 and Firefox 141 on Windows have WebGPU";

thread_local! {
    static QUEUE: RefCell<VecDeque<(Command, Vec<Vec<u8>>)>> = const { RefCell::new(VecDeque::new()) };
}

/// Queues a command and its byte payloads (handled between training steps).
pub fn send(command: Command, bytes: Vec<Vec<u8>>) {
    QUEUE.with(|q| q.borrow_mut().push_back((command, bytes)));
}

/// The next command; of several queued forward-panel requests only the newest is kept (a
/// dragged slider sends dozens).
fn next_command() -> Option<(Command, Vec<Vec<u8>>)> {
    QUEUE.with(|q| {
        let mut q = q.borrow_mut();
        let is_forward = |c: &(Command, Vec<Vec<u8>>)| matches!(c.0, Command::Forward { .. });
        while q.front().is_some_and(is_forward) && q.iter().skip(1).any(is_forward) {
            q.pop_front();
        }
        q.pop_front()
    })
}

/// The datasets the tab serves from `data/<name>/` (`tabdiffusion data <name> --out www/data/<name>`).
pub const DATASETS: [&str; 3] = ["mnist", "fashion-mnist", "cifar10"];

/// Settings of a session, from the URL (`?data=cifar10&model=tiny&batch=8`) or defaults.
#[derive(Clone, Debug)]
pub struct Settings {
    /// One of [`DATASETS`].
    pub data: String,
    pub preset: Preset,
    pub schedule: BetaSchedule,
    pub batch: usize,
    pub learning_rate: f64,
    pub ema_decay: f64,
    /// Refresh the preview grid every this many steps.
    pub preview_every: usize,
    /// DDIM steps of the preview grid.
    pub preview_steps: usize,
    /// Seed of the sampling noise (the CLI's `--seed`).
    pub seed: u64,
    /// Images per grid.
    pub count: usize,
    /// Load at most this many data tiles (10,000 images each).
    pub max_tiles: usize,
    /// Save the run to browser storage every this many steps (and on Pause).
    pub autosave_every: usize,
    /// Train a class-conditional model (`?classes=1`) for classifier-free guidance.
    pub conditional: bool,
    /// Whether the URL named the batch size (a resumed run then takes it: the way to continue
    /// with a smaller batch after the GPU ran out of memory).
    pub batch_given: bool,
    /// Measure instead of waiting for Train: this many timed training steps, then DDIM-50
    /// (`?bench=5`; the numbers appear as JSON in the `bench` element).
    pub bench: Option<usize>,
    /// For the page's fault tests only: destroy the GPU device (a real device loss, through
    /// wgpu's `destroy`) right after this training step (`?test_lose_gpu_at=2`).
    pub lose_gpu_at: Option<usize>,
    /// For the page's fault tests only: panic in this training step (`?test_panic_at=2`).
    pub panic_at: Option<usize>,
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
        let data = get("data").unwrap_or_else(|| DATASETS[0].to_string());
        if !DATASETS.contains(&data.as_str()) {
            return Err(format!("?data={data} is not a dataset; pick one of {}", DATASETS.join(", ")));
        }
        let schedule = match get("schedule") {
            None => BetaSchedule::Linear,
            Some(name) => SCHEDULES
                .iter()
                .find(|(n, _)| *n == name)
                .map(|&(_, s)| s)
                .ok_or(format!("?schedule={name}: pick linear or cosine"))?,
        };
        Ok(Self {
            data,
            preset,
            schedule,
            batch: parse(&get, "batch", 32)?.max(1),
            learning_rate: parse(&get, "lr", 1e-3)?,
            ema_decay: parse(&get, "ema", 0.999)?,
            preview_every: parse(&get, "preview_every", 200)?.max(1),
            preview_steps: parse(&get, "preview_steps", 20)?.max(1),
            seed: parse(&get, "seed", 0)?,
            count: parse(&get, "count", 16)?.clamp(1, 64),
            max_tiles: parse(&get, "tiles", usize::MAX)?.max(1),
            autosave_every: parse(&get, "autosave", 200)?.max(1),
            batch_given: get("batch").is_some(),
            conditional: parse(&get, "classes", 0u8)? == 1,
            bench: get("bench").map(|v| v.parse().map_err(|_| format!("?bench={v} is not a number"))).transpose()?,
            lose_gpu_at: get("test_lose_gpu_at").map(|v| v.parse().map_err(|_| format!("?test_lose_gpu_at={v} is not a number"))).transpose()?,
            panic_at: get("test_panic_at").map(|v| v.parse().map_err(|_| format!("?test_panic_at={v} is not a number"))).transpose()?,
        })
    }
}

/// The schedules by their names in the URL and the Settings panel (`?schedule=`).
const SCHEDULES: [(&str, BetaSchedule); 2] = [("linear", BetaSchedule::Linear), ("cosine", BetaSchedule::Cosine)];

/// The sampler a page choice names.
pub fn sampler_kind(choice: &SamplerChoice) -> SamplerKind {
    let steps = choice.steps.max(1);
    SamplerKind::named(&choice.name, steps, choice.eta, None).unwrap_or(SamplerKind::ddim(steps))
}

/// `[B, C, S, S]` values in [−1, 1] as a picture message with its RGBA bytes.
fn picture(values: &[f32], count: usize, channels: usize, size: usize, columns: usize) -> (Picture, Vec<u8>) {
    let image = values_grid(values, count, channels, size, columns).to_rgba8();
    (Picture { width: image.width(), height: image.height() }, image.into_raw())
}

async fn read(tensor: Tensor<4>) -> Result<Vec<f32>, String> {
    let data = tensor.into_data_async().await.map_err(|e| format!("reading from the GPU failed: {e:?}"))?;
    data.try_to_vec::<f32>().map_err(|e| format!("{e:?}"))
}

/// Columns of the sampling strip.
const STRIP: usize = 10;

struct Session {
    settings: Settings,
    out: Outbox,
    device: Device,
    /// The WebGPU device under `device` (none on the CPU): for its lost callback, and for the
    /// fault test that destroys it.
    gpu: Option<burn::tensor::wgpu::wgpu::Device>,
    /// The run's Web Lock while this tab holds it (only the holder trains and saves).
    run_lock: Option<HeldLock>,
    /// The channel on which a tab asks the holder to hand the run over.
    tabs: Option<web_sys::BroadcastChannel>,
    /// The step of the last save in this browser.
    saved_step: Option<usize>,
    /// "WebGPU" or "CPU".
    backend: &'static str,
    manifest: Manifest,
    data: ImageSet,
    tiles_loaded: usize,
    trainer: Trainer,
    /// What the loaded model is: a preset's name or the imported file's.
    model_name: String,
    /// Why the model cannot train on this dataset (its image shape differs), if it cannot.
    untrainable: Option<String>,
    running: bool,
    losses: Vec<f32>,
    /// Training time and images since the last Train press, for images/s.
    train_ms: f64,
    train_images: usize,
    last_samples: Option<(Vec<usize>, Vec<f32>)>,
    /// The guidance of the last Sample press, which the previews reuse.
    guidance: f64,
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
        if session.tiles_loaded < session.manifest.train.tiles.len().min(session.settings.max_tiles) {
            if let Err(message) = session.load_next_tile().await {
                let images = session.data.len();
                out.send(Update::Error(Notice::new(
                    format!("Loading more of the dataset failed (the connection may have dropped): training goes on with the {images} images that arrived. Reload the page to load the rest."),
                    message,
                )));
                session.tiles_loaded = usize::MAX; // stop trying; train on what arrived
            }
        } else if session.running {
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
            match Device::wgpu_options().init_with_setup_async().await {
                Ok((device, setup)) => {
                    setup.device.set_device_lost_callback(|reason, message| {
                        GPU_LOST.store(true, std::sync::atomic::Ordering::Relaxed);
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

        let dir = format!("data/{}", settings.data);
        doing(format!("loading {}", settings.data));
        out.send(Update::Status(format!("Loading {}…", settings.data)));
        let manifest_bytes = fetch_bytes(&format!("{dir}/manifest.json")).await.map_err(|e| {
            format!(
                "The dataset is missing ({e}). Prepare it with `scripts/setup` or `tabdiffusion data {0} --out www/data/{0}`, or pick another dataset.",
                settings.data
            )
        })?;
        let manifest: Manifest =
            serde_json::from_slice(&manifest_bytes).map_err(|e| format!("{dir}/manifest.json is not a dataset manifest: {e}"))?;
        let labels = fetch_bytes(&format!("{dir}/{}", manifest.train.labels)).await?;
        manifest.train.check_labels(&labels).map_err(|e| format!("{dir}: {e}"))?;
        let data = ImageSet { height: manifest.height, width: manifest.width, channels: manifest.channels, pixels: Vec::new(), labels };

        let mut model_config = settings.preset.config_for(manifest.height, manifest.channels);
        if settings.conditional {
            let classes = data.labels.iter().map(|&l| usize::from(l) + 1).max().unwrap_or(0).max(manifest.classes.len());
            if classes == 0 {
                return Err(format!("{} has no class labels: a class-conditional model cannot train on it.", manifest.name));
            }
            model_config.num_class_embeds = Some(classes + 1); // the last label is the null class
        }
        model_config
            .validate()
            .map_err(|e| format!("The model {} does not fit {} ({e}); pick another model in Settings.", settings.preset.name(), manifest.name))?;
        model_config.check_batch(settings.batch).map_err(|e| format!("?batch={}: {e}", settings.batch))?;
        let train_config = TrainConfig::new()
            .with_batch_size(settings.batch)
            .with_learning_rate(settings.learning_rate)
            .with_ema_decay(settings.ema_decay)
            .with_seed(settings.seed);
        train_config.validate().map_err(|e| format!("The settings in the address cannot train ({e}): change them in Settings."))?;
        let schedule = ScheduleConfig { beta_schedule: settings.schedule, ..Default::default() };
        let trainer = Trainer::new(model_config, train_config, &device).with_schedule(schedule);
        let model_name = settings.preset.name().to_string();
        let mut session = Self {
            settings,
            out,
            device,
            gpu,
            run_lock: None,
            tabs: None,
            saved_step: None,
            backend,
            manifest,
            data,
            tiles_loaded: 0,
            trainer,
            model_name,
            untrainable: None,
            running: false,
            losses: Vec::new(),
            train_ms: 0.0,
            train_images: 0,
            last_samples: None,
            guidance: 3.0,
        };
        session.load_next_tile().await?;
        // One tab trains and saves the run; another one opened beside it samples from the
        // last save until it takes the run over.
        // A reload's previous worker may still be letting go of the lock for a moment.
        for _ in 0..20 {
            session.run_lock = lock(RUN_LOCK, false).await?;
            if session.run_lock.is_some() {
                break;
            }
            yield_now(250).await;
        }
        session.tabs = channel(RUN_LOCK, |message| {
            if message == HAND_OVER {
                send(Command::HandOver, Vec::new());
            }
        })
        .ok();
        out.send(Update::Holder(if session.run_lock.is_some() { Holder::ThisTab } else { Holder::OtherTab }));
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
            format!("Resumed your saved run at step {}. Press Train to continue, or Reset to start over.", session.trainer.step)
        } else {
            "Ready. Press Train.".into()
        }));
        Ok(session)
    }

    async fn load_next_tile(&mut self) -> Result<(), String> {
        let k = self.tiles_loaded;
        let split = &self.manifest.train;
        let url = format!("data/{}/{}", self.settings.data, split.tiles[k]);
        // Byte progress of the first part in the status line (at most once per percent); later
        // parts arrive while it trains, and the images-loaded count shows them.
        let (out, name, parts) = (&self.out, &self.manifest.name, split.tiles.len().min(self.settings.max_tiles));
        let mut shown = u64::MAX;
        let bytes = fetch_bytes_with_progress(&url, limits::MAX_TILE_FILE_BYTES, |received, total| {
            let mb = |n: u64| n as f64 / 1e6;
            let (percent, line) = match total {
                Some(total) => (100 * received / total.max(1), format!("Loading {name}, part {} of {parts}: {:.1} of {:.1} MB", k + 1, mb(received), mb(total))),
                None => (received >> 20, format!("Loading {name}, part {} of {parts}: {:.1} MB", k + 1, mb(received))),
            };
            if k == 0 && percent != shown {
                shown = percent;
                out.send(Update::Status(line));
            }
        })
        .await?;
        let (h, w, c) = (self.manifest.height, self.manifest.width, self.manifest.channels);
        let tile = decode_tile(&bytes, tile_count(split.count, k), h, w, c).map_err(|e| format!("{url}: {e}"))?;
        self.data.pixels.extend_from_slice(&tile.pixels);
        self.tiles_loaded += 1;
        self.out.send(Update::ImagesLoaded(self.data.len()));
        self.show_dataset();
        Ok(())
    }

    fn show_dataset(&self) {
        self.out.send(Update::Dataset {
            name: self.manifest.name.clone(),
            images: self.data.len(),
            timesteps: self.trainer.schedule.len(),
        });
        let classes = self.trainer.model_config.num_classes().map_or(Vec::new(), |k| {
            (0..k).map(|c| self.manifest.classes.get(c).cloned().unwrap_or_else(|| c.to_string())).collect()
        });
        self.out.send(Update::Classes(classes));
    }

    fn show_card(&self) {
        let c = &self.trainer.model_config;
        let schedule = &self.trainer.schedule.config;
        let params = self.trainer.model.num_params();
        self.out.send(Update::ModelCard(format!(
            "{} · {params} parameters ({:.1} MB of weights; training holds ~{:.0} MB: weights, gradients, Adam's two moments, EMA) · {}×{}×{} · channels {:?} · {:?} schedule, T = {}, predicts {:?} · batch {}, lr {}, EMA {} · trained {} steps{}",
            self.model_name,
            params as f64 * 4.0 / 1e6,
            params as f64 * 4.0 * 5.0 / 1e6,
            c.sample_size,
            c.sample_size,
            c.in_channels,
            c.block_out_channels,
            schedule.beta_schedule,
            schedule.num_train_timesteps,
            schedule.prediction_type,
            self.trainer.config.batch_size,
            self.trainer.config.learning_rate,
            self.trainer.config.ema_decay,
            self.trainer.step,
            match &self.untrainable {
                None => format!(" on {}", self.manifest.name),
                Some(why) => format!(" · {why}"),
            }
        )));
    }

    fn set_running(&mut self, running: bool) {
        self.running = running;
        self.out.send(Update::Running(running));
    }

    async fn handle(&mut self, command: Command, bytes: Vec<Vec<u8>>) -> Result<(), Notice> {
        doing(match &command {
            Command::Train => "starting to train",
            Command::Pause => "pausing and saving the run",
            Command::Sample(_) => "sampling",
            Command::Compare => "sampling DDPM-1000 beside DDIM-50",
            Command::Forward { .. } => "drawing the forward process",
            Command::Export | Command::ExportDiffusers => "exporting the weights",
            Command::Import(_) => "importing weights",
            Command::UseImages(_) => "reading your images",
            Command::DownloadSamples => "saving the samples",
            Command::Forget => "removing the saved run",
            Command::TakeOver => "taking the run over from another tab",
            Command::HandOver => "handing the run over to another tab",
        });
        match command {
            Command::Train => {
                if let Some(why) = &self.untrainable {
                    return Err(format!("This model cannot train here: {why}.").into());
                }
                if self.run_lock.is_none() {
                    return Err("This run is open in another tab, which trains and saves it: press Take over to train it here.".into());
                }
                if gpu_lost() {
                    return Err(lost_gpu());
                }
                self.out.send(Update::Error(Notice::default()));
                self.train_ms = 0.0;
                self.train_images = 0;
                self.set_running(true);
                self.out.send(Update::Status("Training…".into()));
            }
            Command::Pause => {
                self.set_running(false);
                self.show_card();
                self.save().await?;
                self.out.send(Update::Status(format!("Paused at step {} (saved in this browser).", self.trainer.step)));
            }
            Command::TakeOver => self.take_over().await?,
            Command::HandOver => self.hand_over().await,
            Command::Forget => {
                if self.run_lock.is_none() {
                    return Err("This run is open in another tab: take it over first, then Reset.".into());
                }
                self.set_running(false);
                unstore(SAVED_RUN).await?;
                unstore(SAVED_IMAGES).await?;
                self.out.send(Update::Forgotten);
            }
            Command::Sample(choice) => {
                self.guidance = choice.guidance;
                let classes = choice.class.map(|c| vec![c]);
                self.sample(sampler_kind(&choice), "Sampling", true, classes).await?
            }
            Command::Compare => self.compare().await?,
            Command::Forward { index, t } => self.forward(index, t).await?,
            Command::Export => {
                self.out.send(Update::Status("Exporting…".into()));
                let bytes = self.weights().await?;
                let name = format!("{}.safetensors", self.export_name());
                self.out.send(Update::Status(format!("Exported {name} ({} bytes).", bytes.len())));
                self.out.send_with(Update::Download { name, mime: "application/octet-stream".into() }, vec![bytes]);
            }
            Command::ExportDiffusers => {
                self.out.send(Update::Status("Exporting…".into()));
                let bytes = self.weights().await?;
                let folder = self.export_name();
                let zip = DiffusersFolder::zip(&folder, &self.trainer.model_config, &self.trainer.schedule.config, &bytes);
                let name = format!("{folder}.zip");
                self.out.send(Update::Status(format!(
                    "Exported {name} ({} bytes): unzip it and load the folder with UNet2DModel.from_pretrained(\"{folder}\").",
                    zip.len()
                )));
                self.out.send_with(Update::Download { name, mime: "application/zip".into() }, vec![zip]);
            }
            Command::Import(names) => self.import(names.into_iter().zip(bytes).collect())?,
            Command::UseImages(names) => self.use_images(names.into_iter().zip(bytes).collect()).await?,
            Command::DownloadSamples => {
                let (shape, values) = self.last_samples.as_ref().ok_or("Sample first.")?;
                let npy = encode_npy(shape, values);
                self.out.send_with(Update::Download { name: "samples.npy".into(), mime: "application/octet-stream".into() }, vec![npy]);
            }
        }
        Ok(())
    }

    /// The EMA weights as a checkpoint file, with this session's model card.
    async fn weights(&self) -> Result<Vec<u8>, String> {
        let card = ModelCard {
            dataset: self.manifest.name.clone(),
            steps: self.trainer.step as u64,
            images_seen: (self.trainer.step * self.trainer.config.batch_size) as u64,
        };
        checkpoint::to_bytes(&self.trainer.ema, &self.trainer.model_config, &self.trainer.schedule.config, &card)
            .await
            .map_err(|e| e.to_string())
    }

    fn export_name(&self) -> String {
        let safe = |s: &str| -> String { s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect() };
        format!("tabdiffusion-{}-{}-step{}", safe(&self.manifest.name), safe(&self.model_name), self.trainer.step)
    }

    /// Whether the model takes this dataset's images; the reason it cannot train if not.
    fn check_trainable(&mut self) {
        let (m, c) = (&self.manifest, &self.trainer.model_config);
        self.untrainable = ((c.sample_size, c.in_channels) != (m.height, m.channels)).then(|| {
            format!(
                "it takes {}×{}×{} images and {} has {}×{}×{}; it can sample",
                c.sample_size, c.sample_size, c.in_channels, m.name, m.height, m.width, m.channels
            )
        });
        if self.untrainable.is_none() && !self.data.is_empty() {
            self.untrainable = self.trainer.check_labels(&self.data).err().map(|e| format!("{e}; it can sample"));
        }
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
        self.trainer = Trainer::from_model(model, config, train_config, &self.device).with_schedule(schedule);
        self.trainer.step = steps;
        self.model_name = label.clone();
        self.check_trainable();
        self.reset_progress();
        let fresh = if checkpoint.is_none() { " (a config without weights: fresh weights)" } else { "" };
        self.out.send(Update::Status(format!("Loaded {label}{fresh}.")));
        self.show_card();
        self.show_dataset();
        Ok(())
    }

    /// Trains on the user's own images from now on (the model's size; centre-cropped).
    async fn use_images(&mut self, files: Vec<(String, Vec<u8>)>) -> Result<(), String> {
        let c = &self.trainer.model_config;
        let (set, classes) = images_from_upload(files, c.sample_size, c.in_channels).map_err(|e| e.to_string())?;
        // Kept in browser storage, so that a saved run on them resumes after a reload.
        let kept = if self.run_lock.is_none() {
            " (not kept in this browser: the run is open in another tab)".to_string()
        } else {
            match store(SAVED_IMAGES, &upload_to_bytes(&set, &classes)).await {
                Ok(()) => String::new(),
                Err(e) => format!(" (they could not be kept in this browser: {e})"),
            }
        };
        self.set_running(false);
        self.out.send(Update::Error(Notice::default()));
        self.set_images(set, classes.clone());
        let count = self.data.len();
        let classes = if classes.is_empty() { String::new() } else { format!(" in {} classes ({})", classes.len(), classes.join(", ")) };
        let (h, w, c) = (self.data.height, self.data.width, self.data.channels);
        self.out.send(Update::Status(format!("Training on your {count} images{classes}, as {h}×{w}×{c}{kept}. Press Train.")));
        self.show_card();
        Ok(())
    }

    /// Makes the user's images this session's training set.
    fn set_images(&mut self, set: ImageSet, classes: Vec<String>) {
        let count = set.len();
        self.manifest = Manifest {
            name: YOUR_IMAGES.into(),
            height: set.height,
            width: set.width,
            channels: set.channels,
            classes,
            ..self.manifest.clone()
        };
        self.manifest.train.count = count;
        self.data = set;
        self.tiles_loaded = usize::MAX; // nothing more to fetch
        self.check_trainable();
        self.out.send(Update::ImagesLoaded(count));
        self.show_dataset();
    }

    /// Saves the run (weights, EMA, Adam, step, random stream, settings, loss history) to the
    /// browser's storage, if this tab holds it. A save that fails leaves the previous one
    /// whole, and says so.
    async fn save(&mut self) -> Result<(), Notice> {
        if self.untrainable.is_some() || self.trainer.step == 0 || self.run_lock.is_none() {
            return Ok(()); // nothing trained here to lose, or another tab's run
        }
        if gpu_lost() {
            return Err(lost_gpu());
        }
        doing(format!("saving the run at step {}", self.trainer.step));
        let card = ModelCard {
            dataset: self.manifest.name.clone(),
            steps: self.trainer.step as u64,
            images_seen: (self.trainer.step * self.trainer.config.batch_size) as u64,
        };
        let extra = [
            ("tab_dataset", if self.manifest.name == YOUR_IMAGES { YOUR_IMAGES.into() } else { self.settings.data.clone() }),
            ("tab_model", self.model_name.clone()),
            ("tab_losses", serde_json::to_string(&self.losses).expect("floats serialise")),
        ];
        let bytes = self.trainer.state_bytes_with(&card, &extra).await.map_err(|e| Notice::new("Saving the run failed.", e.to_string()))?;
        let previous = match self.saved_step {
            Some(step) => format!("The previous save, at step {step}, is kept whole"),
            None => "Nothing was saved before".into(),
        };
        match store(SAVED_RUN, &bytes).await {
            Ok(()) => {
                self.saved_step = Some(self.trainer.step);
                self.out.send(Update::Saved(self.trainer.step));
                Ok(())
            }
            Err(StoreError::Full(detail)) => Err(Notice::new(
                format!(
                    "Saving the run at step {} failed: this browser's storage for this page is full. {previous}; training stopped. Export the weights to keep this step, free some space (site data in the browser's settings), then press Train to go on.",
                    self.trainer.step
                ),
                detail,
            )),
            Err(StoreError::Other(detail)) => Err(Notice::new(
                format!("Saving the run at step {} in this browser failed. {previous}; training stopped.", self.trainer.step),
                detail,
            )),
        }
    }

    /// Asks the tab that holds the run to save it and let go, waits for the lock, then
    /// continues from that save.
    async fn take_over(&mut self) -> Result<(), String> {
        if self.run_lock.is_some() {
            return Ok(());
        }
        self.out.send(Update::Status("Asking the other tab to save the run and let go…".into()));
        if let Some(tabs) = &self.tabs {
            tabs.post_message(&HAND_OVER.into()).map_err(super::browser::describe)?;
        }
        self.run_lock = lock(RUN_LOCK, true).await?;
        self.out.send(Update::Holder(Holder::ThisTab));
        let resumed = self.restore().await?;
        self.show_card();
        self.out.send(Update::Status(if resumed {
            format!("This tab holds the run now, at step {}: press Train to continue.", self.trainer.step)
        } else {
            "This tab holds the run now: press Train.".into()
        }));
        Ok(())
    }

    /// Another tab asked for the run: save it, stop, and let go of it.
    async fn hand_over(&mut self) {
        if self.run_lock.is_none() {
            return;
        }
        self.set_running(false);
        let saved = self.save().await;
        if let Some(held) = self.run_lock.take() {
            held.release();
        }
        self.out.send(Update::Holder(Holder::HandedOver));
        match saved {
            Ok(()) => self.out.send(Update::Status(format!(
                "Another tab took this run over at step {} (saved). This tab can still sample; Take over brings the run back.",
                self.trainer.step
            ))),
            Err(notice) => self.out.send(Update::Error(notice)),
        }
    }

    /// Continues the saved run if there is one for this dataset; whether it did.
    async fn restore(&mut self) -> Result<bool, String> {
        let Some(bytes) = stored(SAVED_RUN).await? else { return Ok(false) };
        let info = state_metadata(&bytes).map_err(|e| e.to_string())?;
        let images = match info.get("tab_dataset").map(String::as_str) {
            // A run on the user's images continues on them, whatever the URL's dataset.
            Some(YOUR_IMAGES) => {
                let images = stored(SAVED_IMAGES).await?.ok_or("the images it trained on are no longer in this browser")?;
                Some(upload_from_bytes(&images).map_err(|e| e.to_string())?)
            }
            Some(data) if data == self.settings.data => None,
            _ => return Ok(false), // a run on another dataset: kept for when that one is picked
        };
        let (mut trainer, _) = Trainer::from_state_bytes(&bytes, &self.device).map_err(|e| e.to_string())?;
        self.saved_step = Some(trainer.step);
        self.out.send(Update::Saved(trainer.step));
        let losses: Vec<f32> = info.get("tab_losses").and_then(|l| serde_json::from_str(l).ok()).unwrap_or_default();
        if self.settings.batch_given {
            trainer.config.batch_size = self.settings.batch;
        }
        self.trainer = trainer;
        self.model_name = info.get("tab_model").cloned().unwrap_or_else(|| "saved run".into());
        if let Some((set, classes)) = images {
            self.set_images(set, classes);
        }
        self.check_trainable();
        self.losses = losses.clone();
        self.out.send(Update::Losses { reset: true, values: losses });
        self.out.send(Update::Step { step: self.trainer.step, images_per_s: 0.0 });
        self.out.send(Update::RunSettings(self.run_settings()));
        Ok(true)
    }

    /// The settings the run trains with, in the Settings panel's terms.
    fn run_settings(&self) -> RunSettings {
        let config = &self.trainer.config;
        RunSettings {
            model: Preset::from_name(&self.model_name).map(|p| p.name().to_string()),
            schedule: SCHEDULES
                .iter()
                .find(|(_, s)| *s == self.trainer.schedule.config.beta_schedule)
                .map_or("linear", |&(n, _)| n)
                .to_string(),
            batch: config.batch_size,
            lr: config.learning_rate,
            ema: config.ema_decay,
            classes: self.trainer.model_config.num_classes().is_some(),
        }
    }

    fn reset_progress(&mut self) {
        self.losses.clear();
        self.out.send(Update::Losses { reset: true, values: Vec::new() });
        self.set_running(false);
        self.out.send(Update::Step { step: self.trainer.step, images_per_s: 0.0 });
        self.out.send(Update::Error(Notice::default()));
    }

    async fn train_step(&mut self) -> Result<(), Notice> {
        if gpu_lost() {
            return Err(lost_gpu());
        }
        let start = now_ms();
        let step = self.trainer.step + 1;
        doing(format!("training step {step}"));
        if self.settings.panic_at == Some(step) {
            panic!("?test_panic_at={step}: a panic injected in training step {step} (the page's test of a crashed worker)");
        }
        let batch = self.trainer.next_labelled_batch(&self.data).map_err(|e| Notice::from(e.to_string()))?;
        let loss = self.trainer.step_batch(batch);
        let loss = match loss.into_scalar_async::<f32>().await {
            Ok(loss) => loss,
            Err(e) => {
                // A lost device fails its reads before the browser reports the loss: give the
                // report a moment, so that the page says what happened.
                yield_now(500).await;
                let detail = format!("reading the loss of step {step}: {e:?}");
                return Err(if gpu_lost() {
                    Notice { detail, ..lost_gpu() }
                } else {
                    Notice::new(
                        "The GPU stopped answering while training (it may have been lost or run out of memory). Your run is saved in this browser as of its last save; reload the page to resume it.",
                        detail,
                    )
                    .with_reload()
                });
            }
        };
        if gpu_lost() {
            return Err(lost_gpu());
        }
        if !loss.is_finite() {
            let step = self.trainer.step;
            let back = match self.restore().await {
                Ok(true) => format!("back at the last saved state, step {}", self.trainer.step),
                _ => "no saved state to go back to".to_string(),
            };
            self.show_card();
            return Err(format!("The loss became {loss} at step {step}: training stopped, {back}. Try a smaller learning rate.").into());
        }
        self.train_ms += now_ms() - start;
        self.train_images += self.trainer.config.batch_size;
        self.losses.push(loss);
        self.out.send(Update::Losses { reset: false, values: vec![loss] });
        let images_per_s = self.train_images as f64 / (self.train_ms / 1000.0).max(1e-9);
        self.out.send(Update::Step { step: self.trainer.step, images_per_s });
        if self.trainer.step % self.settings.autosave_every == 0 {
            self.save().await?;
        }
        if self.settings.lose_gpu_at == Some(self.trainer.step)
            && let Some(gpu) = &self.gpu
        {
            gpu.destroy(); // a real device loss: the lost callback reports it
        }
        if self.trainer.step % self.settings.preview_every == 0 {
            let kind = SamplerKind::ddim(self.settings.preview_steps);
            self.sample(kind, "Preview", false, None).await?;
            self.out.send(Update::Status("Training…".into()));
            self.show_card();
        }
        Ok(())
    }

    /// One training step, its loss read back (the read waits for the GPU).
    async fn timed_step(&mut self) -> Result<(), String> {
        let batch = self.trainer.next_labelled_batch(&self.data).map_err(|e| e.to_string())?;
        let loss = self.trainer.step_batch(batch);
        loss.into_scalar_async::<f32>().await.map(|_| ()).map_err(|e| format!("{e:?}"))
    }

    /// Training and DDIM-50 throughput, measured as `tabdiffusion bench` does natively.
    async fn bench(&mut self, steps: usize) -> Result<String, String> {
        let batch = self.trainer.config.batch_size;
        self.out.send(Update::Status("Benchmark: warming up…".into()));
        self.timed_step().await?;
        let start = now_ms();
        for i in 0..steps {
            self.out.send(Update::Status(format!("Benchmark: training step {}/{steps}…", i + 1)));
            self.timed_step().await?;
        }
        let train = (steps * batch) as f64 / ((now_ms() - start) / 1000.0);

        let config = self.trainer.model_config.clone();
        let kind = SamplerKind::ddim(50);
        let mut warm = SampleRun::new(&config, kind, &self.trainer.schedule, batch, 0, &self.device);
        warm.step(&self.trainer.ema);
        read(warm.sample).await?;
        let start = now_ms();
        let mut run = SampleRun::new(&config, kind, &self.trainer.schedule, batch, 0, &self.device);
        while run.step(&self.trainer.ema).is_some() {
            self.out.send(Update::Status(format!("Benchmark: DDIM step {}/50…", run.index)));
            yield_now(0).await;
        }
        read(run.sample).await?;
        let ddim = batch as f64 / ((now_ms() - start) / 1000.0);
        self.out.send(Update::Status("Benchmark done.".into()));
        let report = BenchReport {
            model: self.model_name.clone(),
            backend: format!("browser-{}", self.backend.to_lowercase()),
            batch,
            params: self.trainer.model.num_params(),
            train_images_per_s: train,
            ddim50_images_per_s: ddim,
        };
        Ok(report.to_json())
    }

    /// Samples a grid from the EMA weights with the fixed seed, yielding between steps. With
    /// `strip`, also sends x_t (top) over x̂_0 (bottom) of the first image at [`STRIP`] evenly
    /// spaced steps.
    async fn sample(&mut self, kind: SamplerKind, what: &str, strip: bool, classes: Option<Vec<usize>>) -> Result<(), String> {
        let config = &self.trainer.model_config;
        let (count, c, s) = (self.settings.count, config.in_channels, config.sample_size);
        let start = now_ms();
        let mut run = self.run(kind, count, classes)?;
        let len = run.len();
        let columns = STRIP.min(len);
        let keep: Vec<usize> = (1..=columns).map(|k| k * len / columns - 1).collect();
        let (mut top, mut bottom) = (Vec::new(), Vec::new());
        while let Some(out) = run.step(&self.trainer.ema) {
            if strip && keep.contains(&(run.index - 1)) {
                top.extend(read(out.prev_sample.slice(0..1)).await?);
                bottom.extend(read(out.pred_x0.slice(0..1)).await?);
            }
            self.out.send(Update::Status(format!("{what}: step {}/{len}…", run.index)));
            yield_now(0).await;
        }
        let values = read(run.sample).await?;
        let seconds = (now_ms() - start) / 1000.0;
        let (grid, rgba) = picture(&values, count, c, s, (count as f64).sqrt().ceil() as usize);
        self.out.send_with(Update::Picture(Canvas::Samples, grid), vec![rgba]);
        if strip {
            top.extend(bottom);
            let (strip, rgba) = picture(&top, 2 * columns, c, s, columns);
            self.out.send_with(Update::Picture(Canvas::Trajectory, strip), vec![rgba]);
        }
        self.out.send(Update::HasSamples);
        self.out.send(Update::Status(format!("{what}: {len} {} steps in {seconds:.1} s.", kind.family())));
        self.last_samples = Some((vec![count, c, s, s], values));
        Ok(())
    }

    /// A sampling run of this session's model from the sample seed. A class-conditional model
    /// is guided toward `classes`, or through all its classes in turn (image i: class i mod K).
    fn run(&self, kind: SamplerKind, count: usize, classes: Option<Vec<usize>>) -> Result<SampleRun, String> {
        let config = &self.trainer.model_config;
        let run = SampleRun::new(config, kind, &self.trainer.schedule, count, self.settings.seed, &self.device);
        let Some(k) = config.num_classes() else { return Ok(run) };
        let classes = classes.unwrap_or_else(|| (0..k).collect());
        run.with_guidance(config, Guidance::cycling(&classes, count, self.guidance)).map_err(|e| e.to_string())
    }

    /// DDPM (all T steps) beside DDIM-50, both from the same x_T (the sample seed).
    async fn compare(&mut self) -> Result<(), String> {
        let config = &self.trainer.model_config;
        let count = self.settings.count.min(8);
        let (c, s) = (config.in_channels, config.sample_size);
        let mut both = Vec::new();
        let mut times = Vec::new();
        for kind in [SamplerKind::Ddpm { variance: Variance::FixedSmall }, SamplerKind::ddim(50)] {
            let start = now_ms();
            let mut run = self.run(kind, count, None)?;
            while run.step(&self.trainer.ema).is_some() {
                self.out.send(Update::Status(format!("Comparing: {} step {}/{}…", kind.family(), run.index, run.len())));
                yield_now(0).await;
            }
            both.extend(read(run.sample).await?);
            times.push((now_ms() - start) / 1000.0);
        }
        let (grid, rgba) = picture(&both, 2 * count, c, s, count);
        self.out.send_with(Update::Picture(Canvas::Compare, grid), vec![rgba]);
        self.out.send(Update::Status(format!(
            "DDPM, {} steps: {:.1} s (top); DDIM, 50 steps: {:.1} s (bottom); same starting noise.",
            self.trainer.schedule.len(),
            times[0],
            times[1]
        )));
        Ok(())
    }

    /// x_0, ε and x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε for training image `index` (ε fixed by the
    /// seed, so only t moves the picture).
    async fn forward(&mut self, index: usize, t: usize) -> Result<(), String> {
        if self.data.is_empty() {
            return Err("No training images yet.".into());
        }
        let index = index.min(self.data.len() - 1);
        let t = t.min(self.trainer.schedule.len() - 1);
        let x0 = self.data.batch(&[index], &self.device);
        let noise = Noise::new(self.settings.seed).normal(x0.dims(), &self.device);
        let x_t = q_sample(&self.trainer.schedule, x0.clone(), noise.clone(), &[t]);
        let values = read(Tensor::cat(vec![x0, noise.clamp(-1.0, 1.0), x_t], 0)).await?;
        let (picture, rgba) = picture(&values, 3, self.data.channels, self.data.height, 3);
        self.out.send_with(Update::Picture(Canvas::Forward, picture), vec![rgba]);
        let alpha_bar = self.trainer.schedule.alphas_cumprod[t];
        self.out.send(Update::ForwardNumbers { t, alpha_bar, snr: alpha_bar / (1.0 - alpha_bar) });
        Ok(())
    }
}
