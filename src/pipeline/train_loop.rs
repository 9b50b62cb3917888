//! The training loop both shells drive (`tabdiffusion train`, the tab's worker), one step at a
//! time, as [`super::SampleRun`] drives sampling: this owns the step and the cadences of
//! saves, previews and quality measurements; the shell reads each step's loss (async in the
//! browser), holds the clock, and renders what [`StepReport`] says is due.

use burn::tensor::Tensor;

use crate::data::ImageSet;
use crate::spec::RunSpec;
use crate::train::{LabelError, Trainer};

/// How often a run saves, previews and measures, in steps (`None`: the shell does not).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cadences {
    /// Save the whole training state every this many steps (0: never during the run).
    pub save_every: usize,
    /// Show a grid of samples every this many steps.
    pub preview_every: Option<usize>,
    /// Measure sample quality every this many steps.
    pub quality_every: Option<usize>,
}

impl Cadences {
    /// The cadences of `spec`: saves, previews and (unless 0) quality measurements.
    pub fn of(spec: &RunSpec) -> Self {
        Self {
            save_every: spec.save_every,
            preview_every: Some(spec.preview_every),
            quality_every: (spec.quality_every > 0).then_some(spec.quality_every),
        }
    }
}

/// What one step did and what is due after it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepReport {
    /// The run's step count after this step.
    pub step: usize,
    pub loss: f32,
    /// An exponential moving average of the losses (weight 0.02 on the newest).
    pub smoothed: f32,
    /// Images trained on since the loop began.
    pub images: usize,
    /// The training state is due to be saved.
    pub save: bool,
    /// A preview grid is due.
    pub preview: bool,
    /// A quality measurement is due.
    pub quality: bool,
    /// The run has reached its last step.
    pub done: bool,
}

/// Why a step could not go on.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Labels(#[from] LabelError),
    /// The loss is not finite: the run diverged (a smaller learning rate may not).
    #[error("the loss became {loss} at step {step}")]
    Diverged { step: usize, loss: f32 },
}

/// A training run's loop: steps until `until` (or until the shell stops asking), with the
/// cadences of [`Cadences`].
#[derive(Clone, Debug)]
pub struct TrainLoop {
    cadences: Cadences,
    until: Option<usize>,
    smoothed: Option<f32>,
    images: usize,
}

impl TrainLoop {
    /// A loop to step `until` (the CLI's `--steps`; `None`: until paused, as the tab).
    pub fn new(cadences: Cadences, until: Option<usize>) -> Self {
        Self { cadences, until, smoothed: None, images: 0 }
    }

    /// Whether `trainer` has taken the loop's last step.
    pub fn is_done(&self, trainer: &Trainer) -> bool {
        self.until.is_some_and(|until| trainer.step >= until)
    }

    /// One step of Algorithm 1 on the next minibatch of `set`. Returns the loss as a tensor, for
    /// the shell to read and hand to [`TrainLoop::record`].
    pub fn step(&mut self, trainer: &mut Trainer, set: &ImageSet) -> Result<Tensor<1>, LabelError> {
        let batch = trainer.next_labelled_batch(set)?;
        self.images += trainer.config.batch_size;
        Ok(trainer.step_batch(batch))
    }

    /// What the loss `loss` of the step that brought the run to `step` means: what is due, or
    /// that the run diverged.
    pub fn record(&mut self, step: usize, loss: f32) -> Result<StepReport, StepError> {
        if !loss.is_finite() {
            return Err(StepError::Diverged { step, loss });
        }
        let smoothed = self.smoothed.map_or(loss, |s| 0.98 * s + 0.02 * loss);
        self.smoothed = Some(smoothed);
        let done = self.until.is_some_and(|until| step >= until);
        let due = |every: Option<usize>| every.is_some_and(|n| n > 0 && step % n == 0);
        Ok(StepReport {
            step,
            loss,
            smoothed,
            images: self.images,
            save: due(Some(self.cadences.save_every)) && !done,
            preview: due(self.cadences.preview_every),
            quality: due(self.cadences.quality_every),
            done,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;
    use crate::model::Preset;

    #[test]
    fn the_cadences_fall_on_their_steps_and_the_last_step_saves_once() {
        let cadences = Cadences { save_every: 2, preview_every: Some(3), quality_every: None };
        let mut run = TrainLoop::new(cadences, Some(4));
        let due: Vec<(bool, bool, bool, bool)> =
            (1..=4).map(|step| run.record(step, 0.5).map(|r| (r.save, r.preview, r.quality, r.done)).unwrap()).collect();
        assert_eq!(due, [(false, false, false, false), (true, false, false, false), (false, true, false, false), (false, false, false, true)]);
        assert!(matches!(run.record(5, f32::NAN), Err(StepError::Diverged { step: 5, .. })));
        assert_eq!(run.record(5, f32::INFINITY).unwrap_err().to_string(), "the loss became inf at step 5");
        let smoothed = TrainLoop::new(cadences, None).record(1, 2.0).unwrap().smoothed;
        assert_eq!(smoothed, 2.0, "the first loss is its own average");
        let spec = RunSpec::SMALL_DATA;
        assert_eq!(Cadences::of(&spec), Cadences { save_every: 200, preview_every: Some(200), quality_every: Some(1000) });
    }

    /// The loop takes the trainer's own steps: the same losses as `Trainer::step_batch` on the
    /// same draws.
    #[test]
    fn the_loop_steps_as_the_trainer_does() {
        let device = Device::flex();
        let pixels = (0..4 * 784).map(|i| (i % 251) as u8).collect();
        let set = ImageSet::new(28, 28, 1, pixels, vec![0, 1, 2, 3]).unwrap();
        let spec = RunSpec::PAPER.with_random_flip(false).with_batch_size(2).with_seed(3);
        let mut by_loop = Trainer::new(Preset::Tiny.config(), spec.clone(), &device);
        let mut by_hand = Trainer::new(Preset::Tiny.config(), spec, &device);
        let mut run = TrainLoop::new(Cadences { save_every: 0, preview_every: None, quality_every: None }, Some(2));
        while !run.is_done(&by_loop) {
            let a = run.step(&mut by_loop, &set).unwrap().into_scalar::<f32>();
            let batch = by_hand.next_labelled_batch(&set).unwrap();
            let b = by_hand.step_batch(batch).into_scalar::<f32>();
            assert_eq!(a, b);
            let report = run.record(by_loop.step, a).unwrap();
            assert!(!report.save, "save_every 0 saves only at the end, which the shell does");
        }
        assert_eq!((by_loop.step, run.record(2, 0.1).unwrap().images), (2, 4));
    }
}
