//! Which samplers there are, by name, and one type that runs any of them. A new sampler is a
//! file of this module (its step, its tests and its equation as MathML) and a variant here:
//! the CLI's `--sampler`, the tab's menu and its sampling panel take it from [`SamplerName`].

use burn::tensor::Tensor;

use super::{Ddim, Ddpm, DpmSolver, RandomStream, Schedule, ScheduleConfig, Spacing, StepOutput, Variance, ddim, ddpm, dpm_solver};

/// A sampler, as the CLI's `--sampler`, the tab's menu and the worker's messages name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SamplerName {
    /// DDIM with a number of steps and η (Song et al. 2021).
    Ddim,
    /// DPM-Solver++(2M) with a number of steps (Lu et al. 2022).
    DpmSolver,
    /// Ancestral sampling over all T steps (DDPM Algorithm 2), variance β̃_t.
    Ddpm,
    /// Ancestral sampling with variance β_t (diffusers' fixed_large).
    DdpmLarge,
}

named!(serde SamplerName, "sampler", [Ddim => "ddim", DpmSolver => "dpm-solver", Ddpm => "ddpm", DdpmLarge => "ddpm-large"]);

impl SamplerName {
    /// What a menu shows.
    pub fn label(self) -> &'static str {
        match self {
            Self::Ddim => "DDIM",
            Self::DpmSolver => "DPM-Solver++(2M)",
            Self::Ddpm => "DDPM (all T steps, σ² = β̃)",
            Self::DdpmLarge => "DDPM (all T steps, σ² = β)",
        }
    }

    /// Whether it takes a number of steps (DDPM takes all T).
    pub fn takes_steps(self) -> bool {
        matches!(self, Self::Ddim | Self::DpmSolver)
    }

    /// Whether it takes DDIM's η.
    pub fn takes_eta(self) -> bool {
        matches!(self, Self::Ddim)
    }

    /// The update it runs, as MathML (the sampling panel shows every sampler's, once each).
    pub fn equation(self) -> &'static str {
        match self {
            Self::Ddim => ddim::EQUATION,
            Self::DpmSolver => dpm_solver::EQUATION,
            Self::Ddpm | Self::DdpmLarge => ddpm::EQUATION,
        }
    }

    /// Every sampler's equation, each once, in menu order.
    pub fn equations() -> Vec<&'static str> {
        let mut all: Vec<&'static str> = Vec::new();
        for name in Self::ALL {
            if !all.contains(&name.equation()) {
                all.push(name.equation());
            }
        }
        all
    }
}

/// Which sampler, and how.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SamplerKind {
    /// Ancestral sampling over all T steps (DDPM Algorithm 2).
    Ddpm { variance: Variance },
    /// DDIM over `steps` steps with stochasticity `eta`.
    Ddim { steps: usize, eta: f64, spacing: Spacing },
    /// DPM-Solver++(2M) over `steps` steps.
    DpmSolver { steps: usize, spacing: Spacing },
}

impl SamplerKind {
    /// DDIM, η = 0, leading spacing: the deterministic default.
    pub fn ddim(steps: usize) -> Self {
        Self::Ddim { steps, eta: 0.0, spacing: Spacing::Leading }
    }

    /// The sampler `name` with these settings for a model whose scheduler config is `config`.
    /// The spacing is `spacing`, else the config's `timestep_spacing`, else diffusers' default
    /// for the sampler (leading for DDIM, linspace for DPM-Solver++). DDPM takes all T steps
    /// (and no η) with the config's `variance_type` (`ddpm-large`: always β_t).
    pub fn new(name: SamplerName, steps: usize, eta: f64, spacing: Option<Spacing>, config: &ScheduleConfig) -> Self {
        let spacing = spacing.or(config.timestep_spacing);
        match name {
            SamplerName::Ddim => Self::Ddim { steps, eta, spacing: spacing.unwrap_or(Spacing::Leading) },
            SamplerName::DpmSolver => Self::DpmSolver { steps, spacing: spacing.unwrap_or(Spacing::Linspace) },
            SamplerName::Ddpm => Self::Ddpm { variance: config.variance_type },
            SamplerName::DdpmLarge => Self::Ddpm { variance: Variance::FixedLarge },
        }
    }

    /// The name of this sampler.
    pub fn name(&self) -> SamplerName {
        match self {
            Self::Ddim { .. } => SamplerName::Ddim,
            Self::DpmSolver { .. } => SamplerName::DpmSolver,
            Self::Ddpm { variance: Variance::FixedSmall } => SamplerName::Ddpm,
            Self::Ddpm { variance: Variance::FixedLarge } => SamplerName::DdpmLarge,
        }
    }

    /// The family, for a status line: "DDIM".
    pub fn family(&self) -> &'static str {
        match self {
            Self::Ddpm { .. } => "DDPM",
            Self::Ddim { .. } => "DDIM",
            Self::DpmSolver { .. } => "DPM-Solver++",
        }
    }

    /// In words, for reports: "DDIM-50 (η = 0, Leading)".
    pub fn describe(&self) -> String {
        match self {
            Self::Ddpm { variance } => format!("DDPM-1000 ({variance:?})"),
            Self::Ddim { steps, eta, spacing } => format!("DDIM-{steps} (η = {eta}, {spacing:?})"),
            Self::DpmSolver { steps, spacing } => format!("DPM-Solver++(2M)-{steps} ({spacing:?})"),
        }
    }
}

/// A sampler built complete for one schedule: its timesteps are fixed at construction.
#[derive(Clone, Debug)]
pub enum Sampler {
    Ddpm(Ddpm),
    Ddim(Ddim),
    DpmSolver(DpmSolver),
}

impl Sampler {
    /// Builds the sampler; each takes its clipping, thresholding and offsets from
    /// `schedule.config`, as diffusers' schedulers take them from theirs.
    pub fn new(kind: SamplerKind, schedule: &Schedule) -> Self {
        match kind {
            SamplerKind::Ddpm { variance } => Self::Ddpm(Ddpm::new(schedule, variance)),
            SamplerKind::Ddim { steps, eta, spacing } => Self::Ddim(Ddim::new(schedule, steps, eta, spacing)),
            SamplerKind::DpmSolver { steps, spacing } => Self::DpmSolver(DpmSolver::new(schedule, steps, spacing)),
        }
    }

    pub fn timesteps(&self) -> &[usize] {
        match self {
            Self::Ddpm(s) => s.timesteps(),
            Self::Ddim(s) => s.timesteps(),
            Self::DpmSolver(s) => s.timesteps(),
        }
    }

    pub fn needs_noise(&self, i: usize) -> bool {
        match self {
            Self::Ddpm(s) => s.needs_noise(i),
            Self::Ddim(s) => s.needs_noise(i),
            Self::DpmSolver(_) => false,
        }
    }

    /// Step `i`, given the network's output at `sample`. Steps are taken in order.
    pub fn step(&mut self, i: usize, output: Tensor<4>, sample: Tensor<4>, noise: Option<Tensor<4>>) -> StepOutput {
        match self {
            Self::Ddpm(s) => s.step(i, output, sample, noise),
            Self::Ddim(s) => s.step(i, output, sample, noise),
            Self::DpmSolver(s) => s.step(i, output, sample),
        }
    }

    /// Step `i` of a sampling run: ask the denoiser for its output at this timestep, draw the
    /// step's noise from `rng` if the sampler needs it, and update. The shells drive the loop
    /// (`for` natively, `await` between steps in the tab).
    pub fn denoise_step(
        &mut self,
        i: usize,
        denoiser: impl FnOnce(Tensor<4>, &[usize]) -> Tensor<4>,
        sample: Tensor<4>,
        rng: &mut RandomStream,
    ) -> StepOutput {
        let dims = sample.dims();
        let t = vec![self.timesteps()[i]; dims[0]];
        let output = denoiser(sample.clone(), &t);
        let noise = self.needs_noise(i).then(|| rng.normal(dims, &sample.device()));
        self.step(i, output, sample, noise)
    }

    /// Runs every step from `x_t` (pure noise at the first timestep) to x_0.
    pub fn sample(
        &mut self,
        mut denoiser: impl FnMut(Tensor<4>, &[usize]) -> Tensor<4>,
        x_t: Tensor<4>,
        rng: &mut RandomStream,
    ) -> Tensor<4> {
        let mut x = x_t;
        for i in 0..self.timesteps().len() {
            x = self.denoise_step(i, &mut denoiser, x, rng).prev_sample;
        }
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sampler_has_its_equation_as_mathml_and_the_panel_shows_each_once() {
        for name in SamplerName::ALL {
            let equation = name.equation();
            assert!(equation.starts_with("<math display=\"block\">") && equation.ends_with("</math>"), "{name}");
            // Each names its sampler, as the panel shows them one under another.
            let title = name.label().split(' ').next().unwrap();
            assert!(equation.contains(&format!("<mtext>{title}:")), "{name}: {title}");
        }
        // DDPM's two variances share one update.
        assert_eq!(SamplerName::equations().len(), 3);
    }
}
