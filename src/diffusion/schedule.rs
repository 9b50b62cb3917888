//! The noise schedule: plain `f64` math computed once (DDPM §2, eq. 4).

/// β_t and everything derived from it, indexed by `t = 0..T` (diffusers' 0-based timesteps).
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    pub betas: Vec<f64>,
    /// ᾱ_t = ∏_{s ≤ t} (1 − β_s).
    pub alphas_cumprod: Vec<f64>,
}

impl Schedule {
    /// DDPM's linear schedule: β from `beta_start` to `beta_end` in `timesteps` equal steps
    /// (Ho et al. 2020 use T = 1000, 1e-4 to 0.02).
    pub fn linear(timesteps: usize, beta_start: f64, beta_end: f64) -> Self {
        let betas = (0..timesteps)
            .map(|i| {
                let frac = if timesteps > 1 { i as f64 / (timesteps - 1) as f64 } else { 0.0 };
                beta_start + frac * (beta_end - beta_start)
            })
            .collect();
        Self::from_betas(betas)
    }

    /// The DDPM paper's schedule: linear, T = 1000, β from 1e-4 to 0.02.
    pub fn ddpm() -> Self {
        Self::linear(1000, 1e-4, 0.02)
    }

    pub fn from_betas(betas: Vec<f64>) -> Self {
        let mut product = 1.0;
        let alphas_cumprod = betas
            .iter()
            .map(|b| {
                product *= 1.0 - b;
                product
            })
            .collect();
        Self { betas, alphas_cumprod }
    }

    /// Number of diffusion steps T.
    pub fn len(&self) -> usize {
        self.betas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.betas.is_empty()
    }

    /// ᾱ at `t`, with ᾱ_{−1} = 1 (the clean image) for `t = None`.
    pub fn alpha_bar(&self, t: Option<usize>) -> f64 {
        t.map_or(1.0, |t| self.alphas_cumprod[t])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_schedule_matches_ddpm_endpoints() {
        // Ho et al. 2020 §4: β_1 = 1e-4, β_T = 0.02, T = 1000.
        let s = Schedule::ddpm();
        assert_eq!(s.len(), 1000);
        assert!((s.betas[0] - 1e-4).abs() < 1e-15);
        assert!((s.betas[999] - 0.02).abs() < 1e-15);
    }

    #[test]
    fn alphas_cumprod_is_the_closed_form_product() {
        // Closed form of ᾱ_t = ∏(1 − β_s) for the linear schedule, summed in log space.
        let s = Schedule::ddpm();
        for &t in &[0usize, 1, 10, 500, 999] {
            let log: f64 = (0..=t).map(|i| (1.0 - (1e-4 + i as f64 * (0.02 - 1e-4) / 999.0)).ln()).sum();
            assert!((s.alphas_cumprod[t] - log.exp()).abs() < 1e-12, "t = {t}");
        }
        // ᾱ_0 = 1 − β_0 and ᾱ_T ≈ 4.04e-5 (the known value for this schedule, cf. diffusers
        // DDPMScheduler.alphas_cumprod[-1] = 4.0358e-05).
        assert!((s.alphas_cumprod[0] - 0.9999).abs() < 1e-12);
        assert!((s.alphas_cumprod[999] - 4.0358e-5).abs() < 1e-8);
    }
}
