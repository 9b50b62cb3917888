//! Training in the tab: the model and what its training has shown, and the step the session
//! takes between commands (the core's [`TrainLoop`] decides what is due after it).

use super::Session;
use crate::diffusion::{SamplerKind, SamplerName};
use crate::pipeline::{Cadences, StepError, TrainLoop};
use crate::spec::RunSpec;
use crate::train::Trainer;
use crate::web::browser::{now_ms, yield_now};
use crate::web::protocol::{Notice, Update};
use crate::web::worker::gpu::{gpu_lost, lost_gpu, read_scalar};
use crate::web::kernels::KernelPath;
use crate::web::worker::outbox::doing;
use crate::web::worker::tuning;

/// The model the session trains, and what its training has shown.
pub(super) struct Training {
    pub trainer: Trainer,
    /// What the loaded model is: a preset's name or the imported file's.
    pub model_name: String,
    /// Why the model cannot train on this dataset (its image shape differs), if it cannot.
    pub untrainable: Option<String>,
    pub running: bool,
    pub losses: Vec<f32>,
    /// (step, loss on the fixed batch) at each step it was measured.
    pub fixed_losses: Vec<(usize, f32)>,
    /// The loop of the training steps since the last Train press (its cadences, its images).
    pub train_loop: TrainLoop,
    /// Training time since the last Train press, for images/s.
    pub train_ms: f64,
}

impl Training {
    pub fn new(trainer: Trainer, model_name: String, spec: &RunSpec) -> Self {
        Self {
            trainer,
            model_name,
            untrainable: None,
            running: false,
            losses: Vec::new(),
            fixed_losses: Vec::new(),
            train_loop: TrainLoop::new(Cadences::of(spec), None),
            train_ms: 0.0,
        }
    }

    /// A new loop from now on (a Train press): its images and time start at 0.
    pub fn restart_loop(&mut self, spec: &RunSpec) {
        self.train_loop = TrainLoop::new(Cadences::of(spec), None);
        self.train_ms = 0.0;
    }
}

impl Session {
    /// One training step, and what the loop says is due after it: a save, a preview, a
    /// quality measurement.
    pub(super) async fn train_step(&mut self) -> Result<(), Notice> {
        if gpu_lost() {
            return Err(lost_gpu());
        }
        let start = now_ms();
        let step = self.training.trainer.step + 1;
        doing(format!("training step {step}"));
        if self.settings.panic_at == Some(step) {
            panic!("?test_panic_at={step}: a panic injected in training step {step} (the page's test of a crashed worker)");
        }
        let tuned_before = tuning::counts();
        let loss = self.training.train_loop.step(&mut self.training.trainer, &self.data).map_err(|e| Notice::from(e.to_string()))?;
        let loss = match read_scalar(loss).await {
            Ok(loss) => loss,
            Err(e) => {
                // A lost device fails its reads before the browser reports the loss: give the
                // report a moment, so that the page says what happened.
                yield_now(500).await;
                let detail = format!("reading the loss of step {step}: {e}");
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
        if tuning::counts() != tuned_before {
            // The status said "tuning kernels: n operations tuned" during the step.
            self.out.send(Update::Status(KernelPath::of_this_build().training_status().into()));
        }
        let report = match self.training.train_loop.record(self.training.trainer.step, loss) {
            Ok(report) => report,
            Err(StepError::Diverged { step, loss }) => {
                self.out.send(Update::Diverged { step });
                let back = match self.restore().await {
                    Ok(true) => format!("back at the last saved state, step {}", self.training.trainer.step),
                    _ => "no saved state to go back to".to_string(),
                };
                self.show_card();
                return Err(format!("The loss became {loss} at step {step}: training stopped, {back}. Try a smaller learning rate.").into());
            }
            Err(other) => return Err(Notice::from(other.to_string())),
        };
        self.training.train_ms += now_ms() - start;
        self.training.losses.push(loss);
        self.out.send(Update::Losses { reset: false, values: vec![loss] });
        let images_per_s = report.images as f64 / (self.training.train_ms / 1000.0).max(1e-9);
        self.out.send(Update::Step { step: report.step, images_per_s });
        if report.save {
            self.save().await?;
        }
        if self.settings.lose_gpu_at == Some(report.step)
            && let Some(gpu) = &self.gpu
        {
            gpu.destroy(); // a real device loss: the lost callback reports it
        }
        if report.preview {
            self.measure_fixed_batch().await?;
            let model = self.sample_model(false)?;
            let kind = SamplerKind::new(SamplerName::Ddim, self.settings.spec.preview_steps, 0.0, None, &model.schedule.config);
            self.sample(kind, &model, "Preview", false, None).await?;
            self.out.send(Update::Status("Training…".into()));
            self.show_card();
        }
        if report.quality {
            self.measure_quality_while_training().await;
        }
        Ok(())
    }
}
