//! The run's shown progress beside its steps: the reset when the model or the data change,
//! and the loss on the fixed batch ([`crate::train::Trainer::fixed_batch_loss`]).

use super::Session;
use crate::web::worker::gpu::{gpu_lost, lost_gpu, read_scalar};
use crate::web::worker::outbox::doing;
use crate::web::protocol::{Notice, Update};

impl Session {
    /// Forgets the shown progress of a run (another model, or other images): the losses,
    /// the fixed-batch history, the last quality, and the error.
    pub(super) fn reset_progress(&mut self) {
        self.training.losses.clear();
        self.clear_fixed_losses();
        self.quality.last = None;
        self.out.send(Update::Quality(None));
        self.out.send(Update::Losses { reset: true, values: Vec::new() });
        self.set_running(false);
        self.out.send(Update::Step { step: self.training.trainer.step, images_per_s: 0.0 });
        self.out.send(Update::Error(Notice::default()));
    }

    /// Measures the training objective on the fixed batch ([`Trainer::fixed_batch_loss`], the
    /// online weights), once a step: when Train starts, with each preview and on Pause. Shown
    /// beside the step's loss, and kept with the run's history.
    pub(super) async fn measure_fixed_batch(&mut self) -> Result<(), Notice> {
        let step = self.training.trainer.step;
        if self.training.untrainable.is_some() || self.training.fixed_losses.last().is_some_and(|&(last, _)| last == step) {
            return Ok(());
        }
        if gpu_lost() {
            return Err(lost_gpu());
        }
        doing(format!("measuring the loss on the fixed batch at step {step}"));
        let loss = self.training.trainer.fixed_batch_loss(&self.data).map_err(|e| Notice::from(e.to_string()))?;
        let loss = read_scalar(loss)
            .await
            .map_err(|e| if gpu_lost() { lost_gpu() } else { Notice::new("Measuring the loss on the fixed batch failed.", e) })?;
        // A diverged model's loss is not a point of the history (and JSON has no NaN); the
        // step's own loss stops the run and says so.
        if loss.is_finite() {
            self.training.fixed_losses.push((step, loss));
            self.out.send(Update::FixedLosses { reset: false, points: vec![(step, loss)] });
        }
        Ok(())
    }

    /// Forgets the fixed-batch history (another model, or other images: another batch).
    pub(super) fn clear_fixed_losses(&mut self) {
        self.training.fixed_losses.clear();
        self.out.send(Update::FixedLosses { reset: true, points: Vec::new() });
    }
}
