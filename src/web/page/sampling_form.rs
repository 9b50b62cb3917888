//! The Sampling panel's inputs in plain values: what each input's text means, the labels the
//! panel shows, and which control a sampler uses. Pure (tested natively); the panel's
//! components (`sampling_panel.rs`) hold the signals and send the choice.

use crate::diffusion::{SamplerName, Spacing};

/// The most steps the steps input takes (its `max`): T of the DDPM schedule every preset trains.
pub const MAX_STEPS: usize = 1000;
/// The class select's value that samples each class in turn.
pub const EVERY_CLASS: &str = "all";
/// The values of the select between this run's model and the trained example.
pub const FROM_RUN: &str = "run";
pub const FROM_EXAMPLE: &str = "example";

/// The steps a few-step sampler takes at first: the address's `?steps=` where it is a number,
/// else the recipe's.
pub fn initial_steps(param: Option<String>, recipe: usize) -> usize {
    param.and_then(|s| s.parse().ok()).unwrap_or(recipe)
}

/// The steps input's text as a step count: within 1 ..= [`MAX_STEPS`], the recipe's where it is
/// not a number.
pub fn steps_input(text: &str, recipe: usize) -> usize {
    text.parse::<usize>().unwrap_or(recipe).clamp(1, MAX_STEPS)
}

/// A slider's text (η, the guidance w) as a number, `fallback` where it is not one.
pub fn slider_input(text: &str, fallback: f64) -> f64 {
    text.parse().unwrap_or(fallback)
}

/// A slider's value as its label shows it: one decimal.
pub fn one_decimal(value: f64) -> String {
    format!("{value:.1}")
}

/// The class select's value as the class to sample: an index, or `None` for each in turn.
pub fn class(value: &str) -> Option<usize> {
    value.parse().ok()
}

/// The class select's options after [`EVERY_CLASS`]: (value, label), the value the class's index.
pub fn class_options(names: &[String]) -> Vec<(String, String)> {
    names.iter().enumerate().map(|(i, name)| (i.to_string(), name.clone())).collect()
}

/// The spacing select's value: `""` is the model's own (its scheduler config), else a name.
pub fn spacing(value: &str) -> Option<Spacing> {
    value.parse().ok()
}

/// A spacing's option label.
pub fn spacing_label(spacing: Spacing) -> String {
    format!("{spacing} spacing")
}

/// The clip select's value: `"on"`, `"off"`, or `""`, as the model's scheduler config says.
pub fn clip_sample(value: &str) -> Option<bool> {
    match value {
        "on" => Some(true),
        "off" => Some(false),
        _ => None,
    }
}

/// Whether clipping x̂₀ applies to `sampler`: DDPM and DDIM clip at each step, DPM-Solver++ not.
pub fn clips(sampler: SamplerName) -> bool {
    sampler != SamplerName::DpmSolver
}

/// The source select's value for sampling the example (`true`) or this run's model.
pub fn source_value(example: bool) -> &'static str {
    if example { FROM_EXAMPLE } else { FROM_RUN }
}

/// Whether the source select's value picks the trained example.
pub fn from_example(value: &str) -> bool {
    value == FROM_EXAMPLE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_come_from_the_address_else_the_recipe() {
        assert_eq!(initial_steps(Some("20".into()), 50), 20);
        assert_eq!(initial_steps(Some("many".into()), 50), 50, "not a number: the recipe's");
        assert_eq!(initial_steps(None, 50), 50);
    }

    #[test]
    fn the_steps_input_stays_within_one_and_t() {
        assert_eq!(steps_input("10", 50), 10);
        assert_eq!(steps_input("0", 50), 1, "a sampler takes at least one step");
        assert_eq!(steps_input("5000", 50), 1000, "no more steps than the schedule's T = 1000");
        assert_eq!(steps_input("", 50), 50, "an emptied input: the recipe's");
        assert_eq!(steps_input("-3", 50), 50, "not a step count: the recipe's");
    }

    #[test]
    fn sliders_read_numbers_and_show_one_decimal() {
        assert_eq!(slider_input("0.3", 0.0), 0.3);
        assert_eq!(slider_input("", 1.5), 1.5);
        assert_eq!(one_decimal(0.3), "0.3");
        assert_eq!(one_decimal(2.0), "2.0");
        assert_eq!(one_decimal(0.1 + 0.2), "0.3", "a slider's steps of 0.1 add up to 0.30000000000000004");
    }

    #[test]
    fn a_class_option_reads_back_as_its_index() {
        let names = vec!["zero".to_string(), "one".to_string()];
        let options = class_options(&names);
        assert_eq!(options, [("0".to_string(), "zero".to_string()), ("1".to_string(), "one".to_string())]);
        assert_eq!(options.iter().map(|(value, _)| class(value)).collect::<Vec<_>>(), [Some(0), Some(1)]);
        assert_eq!(class(EVERY_CLASS), None, "each class in turn");
    }

    #[test]
    fn spacing_and_clip_leave_the_model_its_own_setting_unless_chosen() {
        assert_eq!(spacing(""), None);
        for &s in Spacing::ALL {
            assert_eq!(spacing(s.name()), Some(s), "each option's value names its spacing");
        }
        assert_eq!(spacing_label(Spacing::Trailing), "trailing spacing");
        assert_eq!([clip_sample("on"), clip_sample("off"), clip_sample("")], [Some(true), Some(false), None]);
    }

    #[test]
    fn only_ddpm_and_ddim_clip() {
        let clipping: Vec<SamplerName> = SamplerName::ALL.iter().copied().filter(|&s| clips(s)).collect();
        assert!(!clipping.contains(&SamplerName::DpmSolver));
        assert!(clipping.contains(&SamplerName::Ddpm) && clipping.contains(&SamplerName::Ddim));
    }

    #[test]
    fn the_source_select_round_trips() {
        assert!(from_example(source_value(true)));
        assert!(!from_example(source_value(false)));
        assert_eq!(source_value(false), "run");
    }
}
