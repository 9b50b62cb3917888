//! What a run trains, in one value: the target the network regresses on (ε, v or x_0), the
//! min-SNR-γ weight of each image's squared error, and the schedule that sets ᾱ_t. The page's
//! training equation, its loss chart, the model card and an exported file's card all describe a
//! run from this, so that none of them can say "predict the noise" of a run that predicts v.

use serde::{Deserialize, Serialize};

use super::{BetaSchedule, Prediction, ScheduleConfig};

/// The loss a run minimises: Algorithm 1 of Ho et al. 2020 with its target, weight and
/// schedule as this run sets them ([`super::training_target`], [`super::min_snr_weights`],
/// [`super::Schedule::new`] compute it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    /// What the network predicts, and so the regression target.
    pub prediction: Prediction,
    /// Min-SNR-γ weighting (Hang et al. 2023); `None`: weight 1, DDPM's plain mean.
    pub min_snr_gamma: Option<f64>,
    /// How ᾱ_t runs from 1 towards 0.
    pub schedule: BetaSchedule,
    /// β rescaled so that ᾱ_T = 0 (Lin et al. 2024).
    pub zero_terminal_snr: bool,
    /// T, the number of diffusion steps.
    pub timesteps: usize,
    /// β_1 and β_T of the linear schedule.
    pub beta_start: f64,
    pub beta_end: f64,
}

impl Objective {
    /// The objective of a model with this scheduler config trained with `min_snr_gamma`.
    pub fn new(schedule: &ScheduleConfig, min_snr_gamma: Option<f64>) -> Self {
        Self {
            prediction: schedule.prediction_type,
            min_snr_gamma,
            schedule: schedule.beta_schedule,
            zero_terminal_snr: schedule.rescale_betas_zero_snr,
            timesteps: schedule.num_train_timesteps,
            beta_start: schedule.beta_start,
            beta_end: schedule.beta_end,
        }
    }

    /// Whether this is Algorithm 1 as the paper trains it: the ε target, weight 1, DDPM's
    /// linear β from 10⁻⁴ to 0.02 over T = 1000.
    pub fn is_algorithm_1(&self) -> bool {
        let paper = ScheduleConfig::default();
        self.prediction == Prediction::Epsilon
            && self.min_snr_gamma.is_none()
            && self.schedule == BetaSchedule::Linear
            && !self.zero_terminal_snr
            && (self.timesteps, self.beta_start, self.beta_end) == (paper.num_train_timesteps, paper.beta_start, paper.beta_end)
    }

    /// The target's symbol in words and the page's notation: "ε", "v", "x₀".
    pub fn target(&self) -> &'static str {
        match self.prediction {
            Prediction::Epsilon => "ε",
            Prediction::V => "v",
            Prediction::Sample => "x₀",
        }
    }

    /// The loss by name, as the loss chart's axis says it: "v-loss", "min-SNR-5-weighted
    /// v-loss".
    pub fn loss_name(&self) -> String {
        match self.min_snr_gamma {
            None => format!("{}-loss", self.target()),
            Some(gamma) => format!("min-SNR-{gamma}-weighted {}-loss", self.target()),
        }
    }

    /// The schedule in words: "linear β (0.0001 to 0.02, T = 1000)", "cosine ᾱ (T = 1000)".
    pub fn schedule_words(&self) -> String {
        match self.schedule {
            BetaSchedule::Linear => format!("linear β ({} to {}, T = {})", self.beta_start, self.beta_end, self.timesteps),
            BetaSchedule::Cosine => format!("cosine ᾱ (T = {})", self.timesteps),
        }
    }

    /// The whole objective in words, as the model cards say it: "min-SNR-5-weighted v-loss on
    /// the cosine ᾱ (T = 1000) schedule".
    pub fn describe(&self) -> String {
        let rescaled = if self.zero_terminal_snr { " rescaled to zero terminal SNR" } else { "" };
        format!("{} on the {} schedule{rescaled}", self.loss_name(), self.schedule_words())
    }

    /// A short key of the objective in the address's terms, for tests and attributes:
    /// "prediction=v min_snr=5 schedule=cosine zero_snr=0".
    pub fn key(&self) -> String {
        format!(
            "prediction={} min_snr={} schedule={} zero_snr={}",
            self.prediction.name(),
            self.min_snr_gamma.unwrap_or(0.0),
            self.schedule.name(),
            u8::from(self.zero_terminal_snr)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::RunSpec;

    #[test]
    fn the_papers_recipe_is_algorithm_1_and_the_default_is_not() {
        let paper = RunSpec::PAPER;
        let paper = Objective::new(&paper.schedule_config(), paper.min_snr_gamma);
        assert!(paper.is_algorithm_1());
        assert_eq!(paper.describe(), "ε-loss on the linear β (0.0001 to 0.02, T = 1000) schedule");
        let small = RunSpec::SMALL_DATA;
        let small = Objective::new(&small.schedule_config(), small.min_snr_gamma);
        assert!(!small.is_algorithm_1());
        assert_eq!(small.loss_name(), "min-SNR-5-weighted v-loss");
        assert_eq!(small.describe(), "min-SNR-5-weighted v-loss on the cosine ᾱ (T = 1000) schedule");
        assert_eq!(small.key(), "prediction=v min_snr=5 schedule=cosine zero_snr=0");
    }

    #[test]
    fn zero_terminal_snr_and_other_betas_are_not_algorithm_1() {
        let zero = ScheduleConfig { prediction_type: Prediction::Sample, ..Default::default() }.with_zero_terminal_snr();
        let zero = Objective::new(&zero, None);
        assert!(!zero.is_algorithm_1());
        assert_eq!(zero.describe(), "x₀-loss on the linear β (0.0001 to 0.02, T = 1000) schedule rescaled to zero terminal SNR");
        let other = Objective::new(&ScheduleConfig { beta_end: 0.01, ..Default::default() }, None);
        assert!(!other.is_algorithm_1(), "DDPM's β are part of Algorithm 1 as the paper ran it");
    }
}
