//! The saved run in the session: saving, restoring, and handing it between tabs.

use super::Session;
use crate::data::upload_from_bytes;
use crate::train::{Trainer, state_metadata};
use crate::web::browser::{HeldLock, StoreError, lock, store, stored};
use crate::web::worker::gpu::{gpu_lost, lost_gpu};
use crate::web::worker::outbox::doing;
use crate::web::protocol::{Holder, Notice, Update};
use crate::web::worker::saved_run::{HAND_OVER, RUN_LOCK, SAVED_IMAGES, SAVED_RUN, TabMetadata, YOUR_IMAGES};

/// The run saved in this browser: its lock, the channel to the other tabs, its last save.
#[derive(Default)]
pub(super) struct SavedRun {
    /// The run's Web Lock while this tab holds it (only the holder trains and saves).
    pub lock: Option<HeldLock>,
    /// The channel on which a tab asks the holder to hand the run over.
    pub tabs: Option<web_sys::BroadcastChannel>,
    /// The step of the last save in this browser.
    pub step: Option<usize>,
}

impl Session {
    /// Saves the run (weights, EMA, Adam, step, random stream, settings, loss history) to the
    /// browser's storage, if this tab holds it. A save that fails leaves the previous one
    /// whole, and says so.
    /// The whole run as a training-state file, with the tab's own metadata (its dataset, model
    /// name and loss history): what the browser keeps, and what Export the run downloads.
    pub(super) async fn run_bytes(&self) -> Result<Vec<u8>, String> {
        let card = self.training.trainer.card(&self.manifest.name);
        let dataset = (self.manifest.name != YOUR_IMAGES).then_some(self.settings.spec.dataset);
        let extra = TabMetadata::new(dataset, &self.training.model_name, &self.training.losses, &self.training.fixed_losses).entries();
        self.training.trainer.state_bytes_with(&card, &extra).await.map_err(|e| e.to_string())
    }

    pub(super) async fn save(&mut self) -> Result<(), Notice> {
        if self.training.untrainable.is_some() || self.training.trainer.step == 0 || self.saved.lock.is_none() {
            return Ok(()); // nothing trained here to lose, or another tab's run
        }
        if gpu_lost() {
            return Err(lost_gpu());
        }
        doing(format!("saving the run at step {}", self.training.trainer.step));
        let bytes = self.run_bytes().await.map_err(|e| Notice::new("Saving the run failed.", e))?;
        let previous = match self.saved.step {
            Some(step) => format!("The previous save, at step {step}, is kept whole"),
            None => "Nothing was saved before".into(),
        };
        match store(SAVED_RUN, &bytes).await {
            Ok(()) => {
                self.saved.step = Some(self.training.trainer.step);
                self.out.send(Update::Saved(self.training.trainer.step));
                Ok(())
            }
            Err(StoreError::Full(detail)) => Err(Notice::new(
                format!(
                    "Saving the run at step {} failed: this browser's storage for this page is full. {previous}; training stopped. Export the weights to keep this step, free some space (site data in the browser's settings), then press Train to go on.",
                    self.training.trainer.step
                ),
                detail,
            )),
            Err(StoreError::Other(detail)) => Err(Notice::new(
                format!("Saving the run at step {} in this browser failed. {previous}; training stopped.", self.training.trainer.step),
                detail,
            )),
        }
    }

    /// Asks the tab that holds the run to save it and let go, waits for the lock, then
    /// continues from that save.
    pub(super) async fn take_over(&mut self) -> Result<(), String> {
        if self.saved.lock.is_some() {
            return Ok(());
        }
        self.out.send(Update::Status("Asking the other tab to save the run and let go…".into()));
        if let Some(tabs) = &self.saved.tabs {
            tabs.post_message(&HAND_OVER.into()).map_err(crate::web::browser::describe)?;
        }
        self.saved.lock = lock(RUN_LOCK, true).await?;
        self.out.send(Update::Holder(Holder::ThisTab));
        let resumed = self.restore().await?;
        self.show_card();
        self.out.send(Update::Status(if resumed {
            format!("This tab holds the run now, at step {}: press Train to continue.", self.training.trainer.step)
        } else {
            "This tab holds the run now: press Train.".into()
        }));
        Ok(())
    }

    /// Another tab asked for the run: save it, stop, and let go of it.
    pub(super) async fn hand_over(&mut self) {
        if self.saved.lock.is_none() {
            return;
        }
        self.set_running(false);
        let saved = self.save().await;
        if let Some(held) = self.saved.lock.take() {
            held.release();
        }
        self.out.send(Update::Holder(Holder::HandedOver));
        match saved {
            Ok(()) => self.out.send(Update::Status(format!(
                "Another tab took this run over at step {} (saved). This tab can still sample; Take over brings the run back.",
                self.training.trainer.step
            ))),
            Err(notice) => self.out.send(Update::Error(notice)),
        }
    }

    /// Continues the saved run if there is one for this dataset; whether it did.
    pub(super) async fn restore(&mut self) -> Result<bool, String> {
        let Some(bytes) = stored(SAVED_RUN).await? else { return Ok(false) };
        let info = state_metadata(&bytes).map_err(|e| e.to_string())?;
        let Some(tab) = TabMetadata::read(&info) else { return Ok(false) };
        let images = if tab.on_your_images() {
            // A run on the user's images continues on them, whatever the URL's dataset.
            let images = stored(SAVED_IMAGES).await?.ok_or("the images it trained on are no longer in this browser")?;
            Some(upload_from_bytes(&images).map_err(|e| e.to_string())?)
        } else if tab.dataset.parse() == Ok(self.settings.spec.dataset) {
            None
        } else {
            return Ok(false); // a run on another dataset: kept for when that one is picked
        };
        let (mut trainer, _) = Trainer::from_state_bytes(&bytes, &self.device).map_err(|e| e.to_string())?;
        self.saved.step = Some(trainer.step);
        self.out.send(Update::Saved(trainer.step));
        let losses = tab.losses;
        // The fixed batch is the first B images: another batch size measures another batch.
        let mut fixed_losses = tab.fixed_losses;
        if let Some(batch) = self.settings.overrides.batch_size
            && batch != trainer.config.batch_size
        {
            trainer.config.batch_size = batch;
            fixed_losses.clear();
        }
        self.training.trainer = trainer;
        self.training.model_name = tab.model;
        if let Some((set, classes)) = images {
            self.set_images(set, classes);
        }
        self.check_trainable();
        self.training.losses = losses.clone();
        self.out.send(Update::Losses { reset: true, values: losses });
        self.training.fixed_losses = fixed_losses.clone();
        self.out.send(Update::FixedLosses { reset: true, points: fixed_losses });
        self.out.send(Update::Step { step: self.training.trainer.step, images_per_s: 0.0 });
        Ok(true)
    }
}
