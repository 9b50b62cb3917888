//! What a run's settings give each step: its learning rate and EMA decay, and the settings in
//! words.

use super::RunSpec;

/// The decay used at `step`: `min(decay, (1 + step) / (10 + step))`, the warm-up of diffusers'
/// `EMAModel`, so short runs (the tab) are not dominated by the random initial weights.
pub fn ema_decay(decay: f64, step: usize) -> f64 {
    decay.min((1.0 + step as f64) / (10.0 + step as f64))
}

/// The decay of Karras et al. 2024's power-function EMA (EDM2, eq. 3) at update `t` (from 1):
/// `(1 − 1/t)^(γ+1)`. Then the average weighs the weights of step τ ≤ t by τ^γ: its length grows
/// with the run instead of being fixed, so a short run and a long one are averaged alike. EDM2
/// gives its length as σ_rel, the profile's standard deviation over t:
/// `σ_rel² = (γ+1) / ((γ+2)² (γ+3))`, so γ = 6.94 is σ_rel = 0.10 and γ = 16.97 is 0.05.
pub fn power_ema_decay(gamma: f64, t: usize) -> f64 {
    (1.0 - 1.0 / t.max(1) as f64).powf(gamma + 1.0)
}

impl RunSpec {
    /// The settings in words, as the tab's model card shows them: "batch 32, lr 0.002, EMA
    /// 0.999, min-SNR γ = 5, warm-up 80 steps, rate ∝ 1/√step after step 100".
    pub fn describe(&self) -> String {
        let mut words = format!("batch {}, lr {}", self.batch_size, self.learning_rate);
        if self.adam_beta_2 != RunSpec::PAPER.adam_beta_2 {
            words += &format!(", Adam β₂ = {}", self.adam_beta_2);
        }
        words += &self.ema_power.map_or(format!(", EMA {}", self.ema_decay), |g| format!(", EMA power γ = {g}"));
        if let Some(gamma) = self.min_snr_gamma {
            words += &format!(", min-SNR γ = {gamma}");
        }
        if self.warmup_steps > 0 {
            words += &format!(", warm-up {} steps", self.warmup_steps);
        }
        if let Some(end) = self.decay_steps {
            words += &format!(", cosine decay to step {end}");
        }
        if let Some(from) = self.inverse_sqrt_decay_from {
            words += &format!(", rate ∝ 1/√step after step {from}");
        }
        words
    }

    /// The EMA decay of the update after `step` updates: the power function's at update
    /// `step + 1` when `ema_power` is set, else `ema_decay` under its warm-up.
    pub fn ema_decay_at(&self, step: usize) -> f64 {
        match self.ema_power {
            Some(gamma) => power_ema_decay(gamma, step + 1),
            None => ema_decay(self.ema_decay, step),
        }
    }

    /// The learning rate of the update after `step` updates: `learning_rate` times the warm-up's
    /// `step / warmup` (1 after it) times the decay's factor: the cosine decay's
    /// `½ (1 + cos(π p))` with p the progress from the warm-up's end to `decay_steps`, or the
    /// inverse square root decay's `√(from / max(step, from))`. This is `transformers`'
    /// `get_cosine_schedule_with_warmup` (diffusers' `get_scheduler("cosine")`), whose first
    /// update takes a rate of 0 when warming up; past `decay_steps` the rate stays 0 (p is
    /// clamped to 1), where theirs would rise again.
    pub fn learning_rate_at(&self, step: usize) -> f64 {
        let warm_up = if step < self.warmup_steps { step as f64 / self.warmup_steps as f64 } else { 1.0 };
        let decay = match (self.decay_steps, self.inverse_sqrt_decay_from) {
            (Some(total), _) => {
                let progress = (step.saturating_sub(self.warmup_steps) as f64 / (total - self.warmup_steps).max(1) as f64).min(1.0);
                0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
            (None, Some(from)) => (from as f64 / step.max(from) as f64).sqrt(),
            (None, None) => 1.0,
        };
        self.learning_rate * warm_up * decay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rate after `step` updates, against `transformers`' `get_cosine_schedule_with_warmup`
    /// (`lr_lambda`: `step / warmup` while warming up, then `½ (1 + cos(π p))`), worked out by
    /// hand for warm-up 10 and decay to step 110.
    #[test]
    fn the_learning_rate_warms_up_then_follows_a_half_cosine() {
        let config = RunSpec::PAPER.with_random_flip(false).with_learning_rate(2.0).with_warmup_steps(10);
        let rates: Vec<f64> = [0, 5, 10, 500].map(|s| config.learning_rate_at(s)).to_vec();
        assert_eq!(rates, [0.0, 1.0, 2.0, 2.0], "warm-up, then constant");
        let config = config.with_decay_steps(Some(110));
        for (step, expected) in [(0, 0.0), (10, 2.0), (35, 2.0 * 0.5 * (1.0 + (std::f64::consts::PI / 4.0).cos())), (60, 1.0), (110, 0.0), (400, 0.0)] {
            assert!((config.learning_rate_at(step) - expected).abs() < 1e-12, "step {step}: {}", config.learning_rate_at(step));
        }
        assert_eq!(RunSpec::PAPER.with_random_flip(false).with_learning_rate(3.0).learning_rate_at(0), 3.0, "no warm-up, no decay: constant");
        assert!(config.validate().is_ok());
        assert!(RunSpec::PAPER.with_random_flip(false).with_warmup_steps(10).with_decay_steps(Some(10)).validate().is_err());
        assert!(RunSpec::PAPER.with_random_flip(false).with_warmup_steps(usize::MAX).validate().is_err());
    }

    /// EDM2's decay (Karras et al. 2024, §3: `α(t) = α_ref / √max(t / t_ref, 1)`, times the
    /// warm-up's `min(t / t_rampup, 1)`), by hand for warm-up 10, t_ref 100: constant to step
    /// 100, half the rate at 400, a tenth at 10,000; and with t_ref 4, inside the warm-up.
    #[test]
    fn the_inverse_square_root_decay_needs_no_run_length() {
        let config = RunSpec::PAPER.with_random_flip(false).with_learning_rate(2.0).with_warmup_steps(10).with_inverse_sqrt_decay_from(Some(100));
        for (step, expected) in [(0, 0.0), (5, 1.0), (10, 2.0), (100, 2.0), (400, 1.0), (10_000, 0.2)] {
            assert!((config.learning_rate_at(step) - expected).abs() < 1e-12, "step {step}: {}", config.learning_rate_at(step));
        }
        assert!(config.validate().is_ok());
        let early = config.clone().with_inverse_sqrt_decay_from(Some(4));
        for (step, expected) in [(2, 0.4), (5, 2.0 * 0.5 * 0.8f64.sqrt()), (16, 1.0)] {
            assert!((early.learning_rate_at(step) - expected).abs() < 1e-12, "step {step}: {}", early.learning_rate_at(step));
        }
        for bad in [config.clone().with_inverse_sqrt_decay_from(Some(0)), config.with_decay_steps(Some(500))] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_settings_read_in_words() {
        let config = RunSpec::PAPER.with_random_flip(false).with_batch_size(32).with_learning_rate(2e-3).with_ema_decay(0.999).with_min_snr_gamma(Some(5.0));
        let config = config.with_warmup_steps(80).with_inverse_sqrt_decay_from(Some(100));
        assert_eq!(config.describe(), "batch 32, lr 0.002, EMA 0.999, min-SNR γ = 5, warm-up 80 steps, rate ∝ 1/√step after step 100");
        let config = RunSpec::PAPER.with_random_flip(false).with_batch_size(8).with_adam_beta_2(0.99).with_ema_power(Some(6.94)).with_decay_steps(Some(500));
        assert_eq!(config.describe(), "batch 8, lr 0.0002, Adam β₂ = 0.99, EMA power γ = 6.94, cosine decay to step 500");
    }

    /// The power-function EMA (Karras et al. 2024, EDM2 eqs. 2–3): after T updates the average
    /// holds step τ's weights with the share of the profile (γ+1) s^γ / T^(γ+1) over s in
    /// [τ − 1, τ], i.e. (τ^(γ+1) − (τ−1)^(γ+1)) / T^(γ+1), closed form, since the recursion's
    /// share of w_τ is (1 − β_τ) Π_{s>τ} β_s with β_s = (1 − 1/s)^(γ+1). And γ = 6.94 is EDM2's
    /// σ_rel = 0.10 (their eq. for σ_rel in γ).
    #[test]
    fn the_power_ema_is_the_power_profile_average_of_the_run() {
        let gamma = 6.94;
        let config = RunSpec::PAPER.with_random_flip(false).with_ema_power(Some(gamma));
        let weights: Vec<f64> = (1..=50).map(|t| ((t * 37) % 11) as f64).collect();
        let mut ema = 0.0;
        for (step, w) in weights.iter().enumerate() {
            let beta = config.ema_decay_at(step);
            ema = beta * ema + (1.0 - beta) * w;
        }
        let total = (weights.len() as f64).powf(gamma + 1.0);
        let share = |tau: f64| (tau.powf(gamma + 1.0) - (tau - 1.0).powf(gamma + 1.0)) / total;
        let expected: f64 = weights.iter().enumerate().map(|(i, w)| share((i + 1) as f64) * w).sum();
        assert!((ema - expected).abs() < 1e-9, "{ema} vs {expected}");
        let sigma_rel = ((gamma + 1.0) / ((gamma + 2.0).powi(2) * (gamma + 3.0))).sqrt();
        assert!((sigma_rel - 0.10).abs() < 1e-3, "{sigma_rel}");
        assert_eq!(config.ema_decay_at(0), 0.0, "the first update copies the weights");
        assert_eq!(RunSpec::PAPER.with_random_flip(false).with_ema_decay(0.999).ema_decay_at(0), 0.1, "warm-up: (1 + 0) / (10 + 0)");
        assert!(RunSpec::PAPER.with_random_flip(false).with_ema_power(Some(f64::NAN)).validate().is_err());
    }

}
