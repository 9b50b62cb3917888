//! `schedule`: β_t and ᾱ_t of a noise schedule, the values the samplers and the tab use.

use clap::Args;

use super::CliResult;
use crate::diffusion::{BetaSchedule, Schedule, ScheduleConfig};

#[derive(Args, Debug)]
pub struct ScheduleArgs {
    /// linear: β from --beta-start to --beta-end (DDPM); cosine: Nichol & Dhariwal's ᾱ
    /// (diffusers' squaredcos_cap_v2).
    #[arg(long, value_enum, default_value_t = BetaSchedule::Linear)]
    pub kind: BetaSchedule,
    /// T, the number of diffusion steps.
    #[arg(long, default_value_t = ScheduleConfig::default().num_train_timesteps)]
    pub timesteps: usize,
    #[arg(long, default_value_t = ScheduleConfig::default().beta_start)]
    pub beta_start: f64,
    #[arg(long, default_value_t = ScheduleConfig::default().beta_end)]
    pub beta_end: f64,
    /// Print `{"betas": [...], "alphas_cumprod": [...]}` instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: ScheduleArgs) -> CliResult {
    let config = ScheduleConfig {
        num_train_timesteps: args.timesteps,
        beta_start: args.beta_start,
        beta_end: args.beta_end,
        beta_schedule: args.kind,
        ..Default::default()
    };
    config.validate().map_err(|e| format!("--timesteps / --beta-start / --beta-end: {e}"))?;
    let s = Schedule::new(config);
    if args.json {
        let json = serde_json::json!({ "betas": s.betas, "alphas_cumprod": s.alphas_cumprod });
        println!("{json}");
    } else {
        println!("{:>6} {:>12} {:>12} {:>12}", "t", "beta", "alpha_bar", "SNR");
        for t in 0..s.len() {
            let ab = s.alphas_cumprod[t];
            println!("{t:>6} {:>12.6e} {ab:>12.6e} {:>12.6e}", s.betas[t], ab / (1.0 - ab));
        }
    }
    Ok(())
}
