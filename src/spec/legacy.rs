//! Training states written before the run spec held only its optimisation settings (the
//! `TrainConfig` of then); they still load.

use serde_json::{Map, Value};

use super::RunSpec;

/// The keys every state before the run spec held.
const OPTIMISATION: [&str; 6] = ["batch_size", "learning_rate", "ema_decay", "grad_clip", "seed", "random_flip"];

/// A run spec from a state's `train` JSON: a whole spec, or the older optimisation settings,
/// whose missing fields take the small-data recipe's values, except the options added to those
/// settings over time, which the runs that wrote them did not use (no warm-up, no decay, no
/// weighting, a fixed EMA, Adam's β₂ of 0.999, class dropout 0.1, as then).
pub fn from_state_json(json: &str) -> Option<RunSpec> {
    let value: Value = serde_json::from_str(json).ok()?;
    let given = value.as_object()?;
    if given.contains_key("preset") {
        return serde_json::from_value(value).ok();
    }
    if !OPTIMISATION.iter().all(|key| given.contains_key(*key)) {
        return None;
    }
    let then = RunSpec {
        warmup_steps: 0,
        decay_steps: None,
        inverse_sqrt_decay_from: None,
        min_snr_gamma: None,
        ema_power: None,
        adam_beta_2: 0.999,
        class_dropout: 0.1,
        ..RunSpec::SMALL_DATA
    };
    let Value::Object(mut merged) = serde_json::to_value(then).ok()? else { return None };
    overlay(&mut merged, given);
    serde_json::from_value(Value::Object(merged)).ok()
}

fn overlay(base: &mut Map<String, Value>, given: &Map<String, Value>) {
    for (key, value) in given {
        base.insert(key.clone(), value.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_states_take_what_their_runs_used() {
        // The settings as state files held them before class_dropout (and adam_beta_2: 0.999 then).
        let old = r#"{"batch_size":4,"learning_rate":0.003,"ema_decay":0.999,"grad_clip":1.0,"seed":5,"random_flip":false}"#;
        let spec = from_state_json(old).unwrap();
        let expected = (4, 0.003, 0.999, 5, 0, None, None, 0.1, 0.999);
        let got = (spec.batch_size, spec.learning_rate, spec.ema_decay, spec.seed, spec.warmup_steps, spec.min_snr_gamma, spec.inverse_sqrt_decay_from, spec.class_dropout, spec.adam_beta_2);
        assert_eq!(got, expected);
        // A state of last week: every optimisation option written, some of them null.
        let recent = r#"{"batch_size":32,"learning_rate":0.002,"ema_decay":0.999,"ema_power":null,"adam_beta_2":0.999,"grad_clip":1.0,"seed":0,"random_flip":false,"class_dropout":0.1,"min_snr_gamma":5.0,"warmup_steps":80,"decay_steps":null,"inverse_sqrt_decay_from":100}"#;
        let spec = from_state_json(recent).unwrap();
        assert_eq!(spec, RunSpec::SMALL_DATA, "the default recipe's state reads back as the default recipe");
        assert_eq!(from_state_json(r#"{"batch_size":4}"#), None);
        assert_eq!(from_state_json("[1]"), None);
    }
}
