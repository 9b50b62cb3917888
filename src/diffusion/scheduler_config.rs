//! A diffusers `scheduler_config.json` (and our files' `scheduler` metadata, the same keys),
//! read key by key. A key that changes what the samplers compute is honoured, or refused by
//! name when its value is one this crate does not implement; keys that change nothing here
//! (`_class_name`, `_diffusers_version`, PNDM's `skip_prk_steps`, …) are ignored, as diffusers'
//! `from_config` ignores keys a scheduler does not take.

use serde_json::Value;

use super::{BetaSchedule, Prediction, ScheduleConfig, Spacing, Variance};
use crate::fields::{FieldError, Fields};

/// Why a scheduler config cannot be used.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum SchedulerConfigError {
    #[error("not a JSON object: {0}")]
    NotJson(String),
    /// A value of the wrong JSON type, or a number too large.
    #[error(transparent)]
    Field(#[from] FieldError),
    /// A value this crate does not implement, with what it does.
    #[error("{key} = {found} is not supported (only {supported})")]
    Unsupported { key: String, found: String, supported: String },
    /// Read, but out of range ([`ScheduleConfig::validate`]).
    #[error("{0}")]
    Invalid(String),
}

type Result<T> = std::result::Result<T, SchedulerConfigError>;

/// Keys of DPM-Solver++ (and the other diffusers schedulers) whose every value but one changes
/// the result: the one value, as JSON, that this crate computes.
const ONLY: &[(&str, &str)] = &[
    ("trained_betas", "null"),
    ("solver_order", "2"),
    ("algorithm_type", "\"dpmsolver++\""),
    ("solver_type", "\"midpoint\""),
    ("lower_order_final", "true"),
    ("euler_at_final", "false"),
    ("use_karras_sigmas", "false"),
    ("use_exponential_sigmas", "false"),
    ("use_beta_sigmas", "false"),
    ("use_lu_lambdas", "false"),
    ("use_flow_sigmas", "false"),
    ("use_dynamic_shifting", "false"),
    ("final_sigmas_type", "\"zero\""),
    ("timestep_type", "\"discrete\""),
    ("lambda_min_clipped", "\"-Infinity\""),
];

impl ScheduleConfig {
    /// Reads a scheduler config. Absent and `null` keys take diffusers' defaults.
    pub fn from_json(json: &str) -> Result<Self> {
        let value: Value = serde_json::from_str(&quote_non_finite(json)).map_err(|e| SchedulerConfigError::NotJson(e.to_string()))?;
        let map = value.as_object().ok_or_else(|| SchedulerConfigError::NotJson(format!("it is {value}")))?;
        let read = Reader(Fields { map });
        for (key, only) in ONLY {
            if let Some(found) = read.get(key) {
                let only_value: Value = serde_json::from_str(only).expect("a JSON literal");
                // diffusers writes these booleans as null where they are off.
                if *found != only_value && !(only_value == Value::Bool(false) && found.is_null()) {
                    return Err(unsupported(key, found, only));
                }
            }
        }
        let d = Self::default();
        let config = Self {
            num_train_timesteps: read.usize("num_train_timesteps", d.num_train_timesteps)?,
            beta_start: read.f64("beta_start", d.beta_start)?,
            beta_end: read.f64("beta_end", d.beta_end)?,
            beta_schedule: read.name("beta_schedule", d.beta_schedule, &[("linear", BetaSchedule::Linear), ("squaredcos_cap_v2", BetaSchedule::Cosine)])?,
            prediction_type: read.name(
                "prediction_type",
                d.prediction_type,
                &[("epsilon", Prediction::Epsilon), ("sample", Prediction::Sample), ("v_prediction", Prediction::V)],
            )?,
            rescale_betas_zero_snr: read.bool("rescale_betas_zero_snr", d.rescale_betas_zero_snr)?,
            clip_sample: read.bool("clip_sample", d.clip_sample)?,
            clip_sample_range: read.f64("clip_sample_range", d.clip_sample_range)?,
            thresholding: read.bool("thresholding", d.thresholding)?,
            dynamic_thresholding_ratio: read.f64("dynamic_thresholding_ratio", d.dynamic_thresholding_ratio)?,
            sample_max_value: read.f64("sample_max_value", d.sample_max_value)?,
            set_alpha_to_one: read.bool("set_alpha_to_one", d.set_alpha_to_one)?,
            steps_offset: read.usize("steps_offset", d.steps_offset)?,
            timestep_spacing: match read.get("timestep_spacing") {
                None => None,
                Some(_) => Some(read.name("timestep_spacing", Spacing::Leading, &Spacing::ALL.iter().map(|s| (s.name(), *s)).collect::<Vec<_>>())?),
            },
            variance_type: read.name(
                "variance_type",
                d.variance_type,
                &[("fixed_small", Variance::FixedSmall), ("fixed_large", Variance::FixedLarge)],
            )?,
        };
        config.validate().map_err(SchedulerConfigError::Invalid)?;
        Ok(config)
    }

    /// The config as diffusers writes it (`_class_name` for `DDPMScheduler.from_pretrained`).
    pub fn to_json(&self) -> String {
        let mut value = serde_json::to_value(self).expect("the config serialises");
        value["_class_name"] = "DDPMScheduler".into();
        serde_json::to_string_pretty(&value).expect("JSON serialises")
    }
}

/// Python's `json.dumps` writes `-Infinity`, `Infinity` and `NaN` (diffusers' DPM-Solver
/// config holds `"lambda_min_clipped": -Infinity`); strict JSON has no such numbers, so they
/// are read as strings.
fn quote_non_finite(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    let mut rest = json;
    while let Some(c) = rest.chars().next() {
        if in_string {
            in_string = escaped || c != '"';
            escaped = !escaped && c == '\\';
        } else if c == '"' {
            in_string = true;
        } else if let Some(word) = ["-Infinity", "Infinity", "NaN"].into_iter().find(|w| rest.starts_with(w)) {
            out.push_str(&format!("\"{word}\""));
            rest = &rest[word.len()..];
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

fn unsupported(key: &str, found: &Value, supported: &str) -> SchedulerConfigError {
    SchedulerConfigError::Unsupported { key: key.to_string(), found: found.to_string(), supported: supported.to_string() }
}

/// The config's fields, and the names some of them hold.
struct Reader<'a>(Fields<'a>);

impl<'a> std::ops::Deref for Reader<'a> {
    type Target = Fields<'a>;
    fn deref(&self) -> &Fields<'a> {
        &self.0
    }
}

impl Reader<'_> {
    /// One of `names` (diffusers' spelling).
    fn name<T: Copy>(&self, key: &str, default: T, names: &[(&str, T)]) -> Result<T> {
        let Some(v) = self.get(key) else { return Ok(default) };
        let given = v.as_str().ok_or_else(|| Fields::wrong(key, "a name", v))?;
        let valid: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
        names.iter().find(|(n, _)| *n == given).map(|(_, t)| *t).ok_or_else(|| unsupported(key, v, &valid.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_configs_read_back_unchanged() {
        let configs = [
            ScheduleConfig::default(),
            ScheduleConfig {
                beta_schedule: BetaSchedule::Cosine,
                prediction_type: Prediction::V,
                rescale_betas_zero_snr: true,
                clip_sample: false,
                clip_sample_range: 2.5,
                thresholding: true,
                dynamic_thresholding_ratio: 0.9,
                sample_max_value: 3.0,
                set_alpha_to_one: false,
                steps_offset: 1,
                timestep_spacing: Some(Spacing::Trailing),
                variance_type: Variance::FixedLarge,
                ..ScheduleConfig::default()
            },
        ];
        for config in configs {
            assert_eq!(ScheduleConfig::from_json(&config.to_json()).unwrap(), config);
        }
    }

    /// diffusers 0.36's `DPMSolverMultistepScheduler().save_config` output, as Python writes it.
    const DPM_SOLVER: &str = r#"{"_class_name": "DPMSolverMultistepScheduler", "_diffusers_version": "0.36.0",
        "algorithm_type": "dpmsolver++", "beta_end": 0.02, "beta_schedule": "linear", "beta_start": 0.0001,
        "dynamic_thresholding_ratio": 0.995, "euler_at_final": false, "final_sigmas_type": "zero",
        "flow_shift": 1.0, "lambda_min_clipped": -Infinity, "lower_order_final": true, "num_train_timesteps": 1000,
        "prediction_type": "epsilon", "rescale_betas_zero_snr": false, "sample_max_value": 1.0, "solver_order": 2,
        "solver_type": "midpoint", "steps_offset": 0, "thresholding": false, "timestep_spacing": "linspace",
        "trained_betas": null, "use_beta_sigmas": false, "use_dynamic_shifting": false, "use_exponential_sigmas": false,
        "use_flow_sigmas": false, "use_karras_sigmas": false, "use_lu_lambdas": false, "variance_type": null}"#;

    #[test]
    fn a_dpm_solver_config_as_python_writes_it_reads() {
        let config = ScheduleConfig::from_json(DPM_SOLVER).unwrap();
        assert_eq!(config, ScheduleConfig { timestep_spacing: Some(Spacing::Linspace), ..ScheduleConfig::default() });
    }

    #[test]
    fn fields_that_would_change_the_result_are_refused_by_name() {
        let with = |key: &str, value: &str| {
            let mut v: Value = serde_json::from_str(&quote_non_finite(DPM_SOLVER)).unwrap();
            v[key] = serde_json::from_str(&quote_non_finite(value)).unwrap();
            ScheduleConfig::from_json(&v.to_string()).unwrap_err()
        };
        for (key, value) in [
            ("solver_order", "3"),
            ("algorithm_type", "\"sde-dpmsolver++\""),
            ("use_karras_sigmas", "true"),
            ("lambda_min_clipped", "-5.1"),
            ("final_sigmas_type", "\"sigma_min\""),
            ("trained_betas", "[0.1, 0.2]"),
            ("beta_schedule", "\"scaled_linear\""),
            ("variance_type", "\"learned_range\""),
            ("timestep_spacing", "\"karras\""),
            ("prediction_type", "\"flow\""),
        ] {
            let err = with(key, value);
            assert!(matches!(&err, SchedulerConfigError::Unsupported { key: k, .. } if k == key), "{key}: {err}");
            assert!(err.to_string().starts_with(&format!("{key} = ")), "{err}");
        }
        assert!(matches!(with("clip_sample", "\"yes\""), SchedulerConfigError::Field(FieldError::WrongType { .. })));
        assert!(matches!(with("steps_offset", "5000"), SchedulerConfigError::Invalid(_)));
        assert!(matches!(with("dynamic_thresholding_ratio", "1.5"), SchedulerConfigError::Invalid(_)));
    }

    #[test]
    fn non_finite_numbers_are_quoted_outside_strings_only() {
        assert_eq!(quote_non_finite(r#"{"a": -Infinity, "b": "NaN -Infinity", "c": NaN}"#), r#"{"a": "-Infinity", "b": "NaN -Infinity", "c": "NaN"}"#);
        assert_eq!(quote_non_finite(r#"{"a\"Infinity": 1}"#), r#"{"a\"Infinity": 1}"#);
    }
}
