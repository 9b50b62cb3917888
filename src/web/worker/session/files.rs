//! Files in the session: the dataset's tiles, export, import, and training on the user's own
//! images.

use super::Session;
use super::sampling::SampleModel;
use crate::diffusion::Schedule;
use crate::checkpoint::{self, ModelSource};
use crate::data::{ImageSet, Manifest, decode_tile, images_from_upload, tile_count, upload_to_bytes};
use crate::limits;
use crate::train::{STATE_FORMAT, TrainedExample, Trainer, state_metadata};
use crate::web::browser::{fetch_bytes_with_progress, store};
use crate::web::protocol::{Notice, Update};
use crate::web::worker::saved_run::{SAVED_IMAGES, YOUR_IMAGES};

impl Session {
    /// Loads the dataset's next tile of training images.
    pub(super) async fn load_next_tile(&mut self) -> Result<(), String> {
        let k = self.tiles_loaded;
        let split = &self.manifest.train;
        let url = format!("{}/{}", self.settings.spec.dataset.folder(), split.tiles[k]);
        // Byte progress of the first part in the status line (at most once per percent); later
        // parts arrive while it trains, and the images-loaded count shows them.
        let (out, name, parts) = (&self.out, &self.manifest.name, split.tiles.len().min(self.settings.max_tiles.unwrap_or(usize::MAX)));
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

    pub(super) fn show_dataset(&self) {
        self.out.send(Update::Dataset {
            name: self.manifest.name.clone(),
            images: self.data.len(),
            timesteps: self.training.trainer.schedule.len(),
        });
        let classes = self.training.trainer.model_config.num_classes().map_or(Vec::new(), |k| {
            (0..k).map(|c| self.manifest.classes.get(c).cloned().unwrap_or_else(|| c.to_string())).collect()
        });
        self.out.send(Update::Classes(classes));
    }

    /// The EMA weights as a checkpoint file, with this session's model card.
    pub(super) async fn weights(&self) -> Result<Vec<u8>, String> {
        let card = self.training.trainer.card(&self.manifest.name);
        checkpoint::to_bytes(&self.training.trainer.ema, &self.training.trainer.model_config, &self.training.trainer.schedule.config, &card)
            .await
            .map_err(|e| e.to_string())
    }

    pub(super) fn export_name(&self) -> String {
        let safe = |s: &str| -> String { s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect() };
        format!("tabdiffusion-{}-{}-step{}", safe(&self.manifest.name), safe(&self.training.model_name), self.training.trainer.step)
    }

    /// Whether the model takes this dataset's images; the reason it cannot train if not.
    pub(super) fn check_trainable(&mut self) {
        let (m, c) = (&self.manifest, &self.training.trainer.model_config);
        self.training.untrainable = ((c.sample_size, c.in_channels) != (m.height, m.channels)).then(|| {
            format!(
                "it takes {}×{}×{} images and {} has {}×{}×{}; it can sample",
                c.sample_size, c.sample_size, c.in_channels, m.name, m.height, m.width, m.channels
            )
        });
        if self.training.untrainable.is_none() && !self.data.is_empty() {
            self.training.untrainable = self.training.trainer.check_labels(&self.data).err().map(|e| format!("{e}; it can sample"));
        }
    }

    pub(super) fn import(&mut self, files: Vec<(String, Vec<u8>)>) -> Result<(), String> {
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        let label = names.join(" + ");
        if let [(_, bytes)] = files.as_slice()
            && state_metadata(bytes).is_ok_and(|meta| meta.get("format").map(String::as_str) == Some(STATE_FORMAT))
        {
            return self.import_run(&label, bytes);
        }
        let source = ModelSource::from_files(&files).map_err(|e| format!("{label}: {e}"))?;
        let model = source.build(&self.device, self.settings.spec.seed).map_err(|e| format!("{label}: {e}"))?;
        let steps = source.steps();
        let train_config = self.training.trainer.config.clone();
        self.training.trainer = Trainer::from_model(model, source.config.clone(), train_config, &self.device).with_schedule(source.schedule.clone());
        self.training.trainer.step = steps;
        self.training.model_name = label.clone();
        self.check_trainable();
        self.reset_progress();
        let fresh = if source.checkpoint.is_none() { " (a config without weights: fresh weights)" } else { "" };
        self.out.send(Update::Status(format!("Loaded {label}{fresh}.")));
        self.show_card();
        self.show_dataset();
        Ok(())
    }

    /// Continues a whole run from its training state (exported by this tab or `train --state`,
    /// or written by the PyTorch cluster trainer): its weights, EMA, optimizer, step, random
    /// stream and settings, exactly as `train --resume` would.
    fn import_run(&mut self, label: &str, bytes: &[u8]) -> Result<(), String> {
        let (trainer, card) = Trainer::from_state_bytes(bytes, &self.device).map_err(|e| format!("{label}: {e}"))?;
        self.training.trainer = trainer;
        self.training.model_name = label.to_string();
        self.check_trainable();
        self.reset_progress();
        let step = self.training.trainer.step;
        self.out.send(Update::Status(format!(
            "Loaded the whole run {label}: step {step}, trained on {}. Train continues it with its own settings, optimizer and random stream.",
            card.dataset
        )));
        self.show_card();
        self.show_dataset();
        Ok(())
    }

    /// Loads the trained example that ships with the site beside the run's model: the Sampling
    /// panel samples either, and training goes on with the run's.
    pub(super) async fn load_example(&mut self) -> Result<(), String> {
        let example = TrainedExample::MNIST;
        let (out, mut shown) = (&self.out, String::new());
        let bytes = fetch_bytes_with_progress(example.path, limits::MAX_WEIGHTS_FILE_BYTES, |received, total| {
            let total = total.map_or(String::new(), |t| format!(" of {:.1}", t as f64 / 1e6));
            let line = format!("Fetching the trained example: {:.1}{total} MB", received as f64 / 1e6);
            // Only when the shown number changes, not once per network chunk.
            if line != shown {
                out.send(Update::Status(line.clone()));
                shown = line;
            }
        })
        .await
        .map_err(|e| format!("The trained example could not be fetched: {e}"))?;
        let source = ModelSource::weights(&bytes).map_err(|e| format!("{}: {e}", example.path))?;
        let model = source.build(&self.device, self.settings.spec.seed).map_err(|e| format!("{}: {e}", example.path))?;
        let images = source.checkpoint.as_ref().map_or(0, |c| c.card.images_seen);
        let what = format!("the trained example: {} after {} steps, {images} images of {}", example.preset, source.steps(), example.dataset.label());
        self.sampling.example = Some(SampleModel { model, config: source.config, schedule: Schedule::new(source.schedule) });
        self.out.send(Update::Status(format!("Loaded {what}. 3. Sampling samples it now; your model trains on.")));
        self.out.send(Update::Example(what));
        Ok(())
    }

    /// Trains on the user's own images from now on (the model's size; centre-cropped).
    pub(super) async fn use_images(&mut self, files: Vec<(String, Vec<u8>)>) -> Result<(), String> {
        let c = &self.training.trainer.model_config;
        let (set, classes) = images_from_upload(files, c.sample_size, c.in_channels).map_err(|e| e.to_string())?;
        // Kept in browser storage, so that a saved run on them resumes after a reload.
        let kept = if self.saved.lock.is_none() {
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
    pub(super) fn set_images(&mut self, set: ImageSet, classes: Vec<String>) {
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
        self.clear_fixed_losses(); // the fixed batch is of these images now
        self.check_trainable();
        self.out.send(Update::ImagesLoaded(count));
        self.show_dataset();
    }
}
