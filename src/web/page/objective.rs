//! The training panel's equation: the loss this run minimises, as MathML in the DDPM paper's
//! notation, built from the run's [`Objective`] (its target, min-SNR weight and schedule), and
//! the sentence that relates it to Algorithm 1. Pure string functions, tested natively.
//!
//! Each formula is the one the core computes: the target is [`crate::diffusion::training_target`]'s,
//! the weight [`crate::diffusion::min_snr_weights`]' and ᾱ_t [`crate::diffusion::Schedule::new`]'s,
//! written with the paper's t = 1, …, T (the core indexes them 0, …, T − 1).

use crate::web::page::mathml::line;
use crate::diffusion::{BetaSchedule, COSINE_OFFSET, Objective, Prediction, ScheduleConfig};

fn mi(s: &str) -> String {
    format!("<mi>{s}</mi>")
}

fn mo(s: &str) -> String {
    format!("<mo>{s}</mo>")
}

fn mn(s: impl std::fmt::Display) -> String {
    format!("<mn>{s}</mn>")
}

fn mtext(s: &str) -> String {
    format!("<mtext>{s}</mtext>")
}

fn sub(base: &str, script: &str) -> String {
    format!("<msub>{base}{script}</msub>")
}

fn sqrt(inner: &str) -> String {
    format!("<msqrt>{inner}</msqrt>")
}

fn frac(numerator: &str, denominator: &str) -> String {
    format!("<mfrac><mrow>{numerator}</mrow><mrow>{denominator}</mrow></mfrac>")
}

fn paren(inner: &str) -> String {
    format!("<mo>(</mo>{inner}<mo>)</mo>")
}

fn space() -> &'static str {
    r#"<mspace width="0.5em"/>"#
}

/// ᾱ_t, or ᾱ with another subscript.
fn alpha_bar(t: &str) -> String {
    sub(&mi("ᾱ"), t)
}

fn x0() -> String {
    sub(&mi("x"), &mn(0))
}

/// SNR(t).
fn snr() -> String {
    mtext("SNR") + &paren(&mi("t"))
}

/// The regression target at t, as Algorithm 1 writes ε: ε, v_t or x_0.
fn target(prediction: Prediction) -> String {
    match prediction {
        Prediction::Epsilon => mi("ε"),
        Prediction::V => sub(&mi("v"), &mi("t")),
        Prediction::Sample => x0(),
    }
}

/// The network's output: ε_θ, v_θ or x_θ.
fn network(prediction: Prediction) -> String {
    let symbol = match prediction {
        Prediction::Epsilon => "ε",
        Prediction::V => "v",
        Prediction::Sample => "x",
    };
    sub(&mi(symbol), &mi("θ"))
}

/// √ᾱ_t x_0 + √(1 − ᾱ_t) ε: x_t in closed form (DDPM eq. 4).
fn x_t() -> String {
    let t = mi("t");
    format!("{}{}{}{}{}", sqrt(&alpha_bar(&t)), x0(), mo("+"), sqrt(&(mn(1) + &mo("−") + &alpha_bar(&t))), mi("ε"))
}

/// Algorithm 1, line 5, with this run's weight and target:
/// ∇_θ w_t ‖target − net(√ᾱ_t x_0 + √(1 − ᾱ_t) ε, t)‖².
fn gradient_line(objective: &Objective) -> String {
    let weight = if objective.min_snr_gamma.is_some() { sub(&mi("w"), &mi("t")) } else { String::new() };
    let norm = format!(
        "<msup><mrow>{bar}{target}{minus}{net}{args}{bar}</mrow>{two}</msup>",
        bar = mo("‖"),
        target = target(objective.prediction),
        minus = mo("−"),
        net = network(objective.prediction),
        args = paren(&(x_t() + &mo(",") + &mi("t"))),
        two = mn(2),
    );
    line(&[format!("{}{weight}{norm}{}", sub(&mo("∇"), &mi("θ")), mo(","))])
}

/// x_0 ∼ q(x_0), t ∼ Uniform({1, …, T}), ε ∼ N(0, I) (Algorithm 1, lines 2–4).
fn draws_line() -> String {
    let (tilde, comma) = (mo("∼"), mo(","));
    let uniform = mtext("Uniform") + &paren(&(mo("{") + &mn(1) + &comma + &mo("…") + &comma + &mi("T") + &mo("}")));
    let normal = r#"<mi class="cal">N</mi>"#.to_string() + &paren(&(mn(0) + &comma + r#"<mi mathvariant="bold">I</mi>"#));
    line(&[
        format!("{}{tilde}{}{}{comma}", x0(), mi("q"), paren(&x0())),
        format!("{}{tilde}{uniform}{comma}", mi("t")),
        format!("{}{tilde}{normal}", mi("ε")),
    ])
}

/// v_t = √ᾱ_t ε − √(1 − ᾱ_t) x_0 (Salimans & Ho 2022, §4): only where the target is v.
fn v_line() -> String {
    let t = mi("t");
    line(&[format!(
        "{}{}{}{}{}{}{}",
        target(Prediction::V),
        mo("="),
        sqrt(&alpha_bar(&t)),
        mi("ε"),
        mo("−"),
        sqrt(&(mn(1) + &mo("−") + &alpha_bar(&t))),
        x0()
    )])
}

/// w_t = min(SNR(t), γ) over SNR(t) for ε, SNR(t) + 1 for v, 1 for x_0 (Hang et al. 2023),
/// SNR(t) = ᾱ_t / (1 − ᾱ_t).
fn weight_line(prediction: Prediction, gamma: f64) -> String {
    let clipped = mi("min") + &paren(&(snr() + &mo(",") + &mn(gamma)));
    let weight = match prediction {
        Prediction::Epsilon => frac(&clipped, &snr()),
        Prediction::V => frac(&clipped, &(snr() + &mo("+") + &mn(1))),
        Prediction::Sample => clipped,
    };
    let t = mi("t");
    let ratio = frac(&alpha_bar(&t), &(mn(1) + &mo("−") + &alpha_bar(&t)));
    line(&[format!("{}{}{weight}{}", sub(&mi("w"), &t), mo("="), mo(",")), format!("{}{}{ratio}", snr(), mo("="))])
}

/// ᾱ_t of the schedule: ∏ (1 − β_s) with DDPM's linear β, or Nichol & Dhariwal's cosine
/// f(t)/f(0) (diffusers' `squaredcos_cap_v2`, whose β_T is capped at 0.999).
fn schedule_line(objective: &Objective) -> String {
    let (t, big_t) = (mi("t"), mi("T"));
    let beta = |s: &str| sub(&mi("β"), s);
    let (equals, comma) = (mo("="), mo(","));
    let steps = format!("{big_t}{equals}{}", mn(objective.timesteps));
    match objective.schedule {
        BetaSchedule::Linear => {
            let product = format!(
                "<munderover>{}<mrow>{}{}{}</mrow>{}</munderover>{}",
                mo("∏"),
                mi("s"),
                mo("="),
                mn(1),
                mi("t"),
                paren(&(mn(1) + &mo("−") + &beta(&mi("s"))))
            );
            let (first, last) = (beta(&mn(1)), beta(&big_t));
            let step = frac(&(mi("t") + &mo("−") + &mn(1)), &(mi("T") + &mo("−") + &mn(1)));
            let range = paren(&(last.clone() + &mo("−") + &first));
            line(&[
                format!("{}{equals}{product}{comma}", alpha_bar(&t)),
                format!("{}{equals}{first}{}{step}{range}{comma}", beta(&t), mo("+")),
                format!("{first}{equals}{}{comma}{}{last}{equals}{}{comma}{}{steps}", mn(objective.beta_start), space(), mn(objective.beta_end), space()),
            ])
        }
        BetaSchedule::Cosine => {
            let f = |arg: &str| mi("f") + &paren(arg);
            let angle = frac(&(t.clone() + &mo("/") + &big_t + &mo("+") + &mi("s")), &(mn(1) + &mo("+") + &mi("s")));
            let cos2 = format!("<msup>{}{}</msup>", mi("cos"), mn(2));
            let argument = paren(&(angle + &mo("·") + &frac(&mi("π"), &mn(2))));
            line(&[
                format!("{}{equals}{}{comma}", alpha_bar(&t), frac(&f(&t), &f(&mn(0)))),
                format!("{}{equals}{cos2}{argument}{comma}", f(&t)),
                format!("{}{equals}{}{comma}{}{steps}{comma}{}{}", mi("s"), mn(COSINE_OFFSET), space(), space(), mtext("β capped at 0.999")),
            ])
        }
    }
}

/// √ᾱ_t ← √ᾱ_1 (√ᾱ_t − √ᾱ_T) / (√ᾱ_1 − √ᾱ_T), so that ᾱ_T = 0 (Lin et al. 2024, Algorithm 1).
fn zero_snr_line() -> String {
    let root = |s: &str| sqrt(&alpha_bar(s));
    let (t, one, big_t) = (mi("t"), mn(1), mi("T"));
    let shifted = frac(&(root(&t) + &mo("−") + &root(&big_t)), &(root(&one) + &mo("−") + &root(&big_t)));
    line(&[
        format!("{}{}{}{shifted}{}", root(&t), mo("←"), root(&one), mo(",")),
        format!("{}{}{}", alpha_bar(&big_t), mo("="), mn(0)),
    ])
}

/// The objective as lines of display equations: the gradient of Algorithm 1's line 5 with this
/// run's target and weight, what is drawn, then the target's, the weight's and ᾱ_t's
/// definitions.
pub fn training_equation(objective: &Objective) -> String {
    let mut lines = vec![gradient_line(objective), draws_line()];
    if objective.prediction == Prediction::V {
        lines.push(v_line());
    }
    if let Some(gamma) = objective.min_snr_gamma {
        lines.push(weight_line(objective.prediction, gamma));
    }
    lines.push(schedule_line(objective));
    if objective.zero_terminal_snr {
        lines.push(zero_snr_line());
    }
    lines.concat()
}

/// One sentence that relates the objective to Algorithm 1 (Ho et al. 2020): that it is it, or
/// what this run changes.
pub fn training_note(objective: &Objective) -> String {
    let paper = ScheduleConfig::default();
    let rule = format!(
        "regresses ε with weight 1 on the linear β schedule ({} to {}, T = {})",
        paper.beta_start, paper.beta_end, paper.num_train_timesteps
    );
    if objective.is_algorithm_1() {
        return format!("This is Algorithm 1 of Ho et al. 2020 as the paper trains it: it {rule}.");
    }
    let mut changes = Vec::new();
    match objective.prediction {
        Prediction::Epsilon => {}
        Prediction::V => changes.push("regresses v instead (Salimans & Ho 2022)".to_string()),
        Prediction::Sample => changes.push("regresses the clean image x₀ instead".to_string()),
    }
    if let Some(gamma) = objective.min_snr_gamma {
        changes.push(format!(
            "weights each image by wₜ, so that its weight as an x₀-loss is min(SNR(t), {gamma}) and the easy, high-SNR steps count less (min-SNR-{gamma}, Hang et al. 2023)"
        ));
    }
    match objective.schedule {
        BetaSchedule::Cosine => changes.push(format!(
            "uses Nichol & Dhariwal's cosine ᾱₜ (2021), which adds the noise more gradually{}",
            if objective.timesteps == paper.num_train_timesteps { String::new() } else { format!(", over T = {}", objective.timesteps) }
        )),
        BetaSchedule::Linear => {
            if (objective.beta_start, objective.beta_end, objective.timesteps) != (paper.beta_start, paper.beta_end, paper.num_train_timesteps) {
                changes.push(format!("uses β from {} to {} over T = {}", objective.beta_start, objective.beta_end, objective.timesteps));
            }
        }
    }
    if objective.zero_terminal_snr {
        changes.push("rescales ᾱₜ so that the last step is pure noise (zero terminal SNR, Lin et al. 2024)".to_string());
    }
    let changes = match changes.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => changes.concat(),
    };
    format!("Algorithm 1 of Ho et al. 2020 {rule}; this run {changes}.")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::RunSpec;

    /// Every objective the settings allow: each target × min-SNR off and γ = 5 × each schedule
    /// × zero terminal SNR where the target allows it (not ε: `ScheduleConfig::validate`).
    fn every_objective() -> Vec<Objective> {
        let mut all = Vec::new();
        for &prediction in Prediction::ALL {
            for gamma in [None, Some(5.0)] {
                for &schedule in BetaSchedule::ALL {
                    for zero in [false, true] {
                        let config = ScheduleConfig { prediction_type: prediction, beta_schedule: schedule, ..Default::default() };
                        if zero && prediction == Prediction::Epsilon {
                            continue;
                        }
                        let config = if zero { config.with_zero_terminal_snr() } else { config };
                        config.validate().unwrap();
                        all.push(Objective::new(&config, gamma));
                    }
                }
            }
        }
        all
    }

    #[test]
    fn the_equation_shows_the_target_the_network_predicts() {
        for objective in every_objective() {
            let eq = training_equation(&objective);
            let (target, network) = match objective.prediction {
                Prediction::Epsilon => ("<mo>‖</mo><mi>ε</mi><mo>−</mo><msub><mi>ε</mi><mi>θ</mi></msub>", None),
                Prediction::V => (
                    "<mo>‖</mo><msub><mi>v</mi><mi>t</mi></msub><mo>−</mo><msub><mi>v</mi><mi>θ</mi></msub>",
                    // v_t = √ᾱ_t ε − √(1 − ᾱ_t) x_0, as training_target computes it.
                    Some("<msub><mi>v</mi><mi>t</mi></msub><mo>=</mo><msqrt><msub><mi>ᾱ</mi><mi>t</mi></msub></msqrt><mi>ε</mi><mo>−</mo><msqrt><mn>1</mn><mo>−</mo><msub><mi>ᾱ</mi><mi>t</mi></msub></msqrt><msub><mi>x</mi><mn>0</mn></msub>"),
                ),
                Prediction::Sample => ("<mo>‖</mo><msub><mi>x</mi><mn>0</mn></msub><mo>−</mo><msub><mi>x</mi><mi>θ</mi></msub>", None),
            };
            assert!(eq.contains(target), "{}: {eq}", objective.key());
            assert_eq!(eq.contains("<msub><mi>v</mi><mi>t</mi></msub><mo>=</mo>"), network.is_some(), "{}", objective.key());
            if let Some(v) = network {
                assert!(eq.contains(v), "{}: {eq}", objective.key());
            }
            // x_t in closed form is the network's input whatever it predicts.
            assert!(eq.contains("<mo>(</mo><msqrt><msub><mi>ᾱ</mi><mi>t</mi></msub></msqrt><msub><mi>x</mi><mn>0</mn></msub><mo>+</mo>"));
            assert!(eq.contains("<mtext>Uniform</mtext>"));
        }
    }

    #[test]
    fn the_min_snr_weight_appears_only_when_on_and_in_its_targets_form() {
        for objective in every_objective() {
            let eq = training_equation(&objective);
            let weighted = eq.contains("<msub><mo>∇</mo><mi>θ</mi></msub><msub><mi>w</mi><mi>t</mi></msub>");
            assert_eq!(weighted, objective.min_snr_gamma.is_some(), "{}", objective.key());
            assert_eq!(eq.contains("<mi>min</mi>"), objective.min_snr_gamma.is_some());
            let Some(gamma) = objective.min_snr_gamma else { continue };
            // forward::min_snr_weights: min(SNR, γ)/SNR for ε, /(SNR + 1) for v, itself for x_0.
            let clipped = format!("<mi>min</mi><mo>(</mo><mtext>SNR</mtext><mo>(</mo><mi>t</mi><mo>)</mo><mo>,</mo><mn>{gamma}</mn><mo>)</mo>");
            let weight = match objective.prediction {
                Prediction::Epsilon => format!("<mfrac><mrow>{clipped}</mrow><mrow><mtext>SNR</mtext><mo>(</mo><mi>t</mi><mo>)</mo></mrow></mfrac>"),
                Prediction::V => format!("<mfrac><mrow>{clipped}</mrow><mrow><mtext>SNR</mtext><mo>(</mo><mi>t</mi><mo>)</mo><mo>+</mo><mn>1</mn></mrow></mfrac>"),
                Prediction::Sample => format!("<mo>=</mo>{clipped}<mo>,</mo>"),
            };
            assert!(eq.contains(&weight), "{}: {eq}", objective.key());
            assert!(eq.contains("<mfrac><mrow><msub><mi>ᾱ</mi><mi>t</mi></msub></mrow><mrow><mn>1</mn><mo>−</mo><msub><mi>ᾱ</mi><mi>t</mi></msub></mrow></mfrac>"), "SNR(t) = ᾱ_t/(1 − ᾱ_t)");
        }
        let five = Objective::new(&RunSpec::SMALL_DATA.schedule_config(), Some(5.0));
        assert!(training_equation(&five).contains("<mn>5</mn>"), "γ's value is written");
        let half = Objective { min_snr_gamma: Some(0.5), ..five };
        assert!(training_equation(&half).contains("<mo>,</mo><mn>0.5</mn><mo>)</mo>"));
    }

    #[test]
    fn the_schedule_line_defines_alpha_bar_as_the_core_computes_it() {
        for objective in every_objective() {
            let eq = training_equation(&objective);
            let product = eq.contains("<mo>∏</mo>");
            let cosine = eq.contains("<msup><mi>cos</mi><mn>2</mn></msup>");
            match objective.schedule {
                BetaSchedule::Linear => {
                    assert!(product && !cosine, "{}", objective.key());
                    // DDPM's β from 0.0001 to 0.02 over T = 1000.
                    assert!(eq.contains("<mo>=</mo><mn>0.0001</mn>") && eq.contains("<mo>=</mo><mn>0.02</mn>"), "{eq}");
                }
                BetaSchedule::Cosine => {
                    assert!(cosine && !product, "{}", objective.key());
                    // ᾱ_t = f(t)/f(0), s = 0.008, β capped at 0.999 (schedule::cosine_betas).
                    assert!(eq.contains("<mfrac><mrow><mi>f</mi><mo>(</mo><mi>t</mi><mo>)</mo></mrow><mrow><mi>f</mi><mo>(</mo><mn>0</mn><mo>)</mo></mrow></mfrac>"));
                    assert!(eq.contains("<mn>0.008</mn>") && eq.contains("0.999"));
                }
            }
            assert!(eq.contains("<mi>T</mi><mo>=</mo><mn>1000</mn>"));
            assert_eq!(eq.contains("<mo>←</mo>"), objective.zero_terminal_snr, "the rescaling line: {}", objective.key());
            assert_eq!(eq.matches(r#"<div class="equation-line">"#).count(), 3 + usize::from(objective.prediction == Prediction::V) + usize::from(objective.min_snr_gamma.is_some()) + usize::from(objective.zero_terminal_snr));
        }
    }

    #[test]
    fn the_paper_recipe_is_algorithm_1_word_for_word() {
        let paper = RunSpec::PAPER;
        let objective = Objective::new(&paper.schedule_config(), paper.min_snr_gamma);
        let eq = training_equation(&objective);
        assert!(eq.starts_with("<div class=\"equation-line\"><math display=\"block\"><msub><mo>∇</mo><mi>θ</mi></msub><msup><mrow><mo>‖</mo><mi>ε</mi><mo>−</mo><msub><mi>ε</mi><mi>θ</mi></msub>"), "{eq}");
        assert_eq!(training_note(&objective), "This is Algorithm 1 of Ho et al. 2020 as the paper trains it: it regresses ε with weight 1 on the linear β schedule (0.0001 to 0.02, T = 1000).");
    }

    #[test]
    fn the_note_names_what_each_run_changes_from_algorithm_1() {
        let small = RunSpec::SMALL_DATA;
        let note = training_note(&Objective::new(&small.schedule_config(), small.min_snr_gamma));
        assert!(note.starts_with("Algorithm 1 of Ho et al. 2020 regresses ε with weight 1 on the linear β schedule"), "{note}");
        assert!(note.contains("this run regresses v instead") && note.contains("min-SNR-5") && note.contains(" and uses Nichol & Dhariwal's cosine"), "{note}");
        for objective in every_objective() {
            let note = training_note(&objective);
            assert_eq!(note.contains("regresses v"), objective.prediction == Prediction::V, "{note}");
            assert_eq!(note.contains("x₀ instead"), objective.prediction == Prediction::Sample, "{note}");
            assert_eq!(note.contains("min-SNR"), objective.min_snr_gamma.is_some(), "{note}");
            assert_eq!(note.contains("cosine"), objective.schedule == BetaSchedule::Cosine, "{note}");
            assert_eq!(note.contains("zero terminal SNR"), objective.zero_terminal_snr, "{note}");
            assert!(note.ends_with('.') && !note.contains("this run ."), "{note}");
        }
        let eps_linear_5 = Objective::new(&ScheduleConfig::default(), Some(5.0));
        assert!(training_note(&eps_linear_5).ends_with("; this run weights each image by wₜ, so that its weight as an x₀-loss is min(SNR(t), 5) and the easy, high-SNR steps count less (min-SNR-5, Hang et al. 2023)."));
    }
}
