//! diffusers' `UNet2DModel` `config.json`, read and written.
//!
//! Reading follows `UNet2DModel.__init__`: a key that is absent takes diffusers' default, and a
//! key that `UNet2DModel` does not take is ignored, as diffusers ignores it. Every
//! `UNet2DModel` option this U-Net cannot follow is refused by name.

use serde_json::{Value, json};

use super::{ConfigError, UNetConfig};
use crate::fields::{FieldError, Fields};

/// Why a `config.json` cannot be read as this U-Net.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum DiffusersConfigError {
    #[error("config.json is not a JSON object: {0}")]
    NotJson(String),
    /// A value of the wrong JSON type, or a number too large.
    #[error(transparent)]
    Field(#[from] FieldError),
    /// An option of `UNet2DModel` this U-Net does not follow, with what it does follow.
    #[error("{key} = {found} is not supported (only {supported})")]
    Unsupported { key: String, found: String, supported: String },
    #[error("{key} is missing: {why}")]
    Missing { key: &'static str, why: &'static str },
    #[error("{channels} block_out_channels, {down} down_block_types and {up} up_block_types: they must be as many")]
    BlockCounts { channels: usize, down: usize, up: usize },
    /// Read, but not a U-Net that can be built.
    #[error(transparent)]
    Invalid(#[from] ConfigError),
}

type Result<T> = std::result::Result<T, DiffusersConfigError>;

fn wrong(key: &str, expected: &'static str, found: &Value) -> DiffusersConfigError {
    Fields::wrong(key, expected, found).into()
}

fn unsupported(key: &str, found: impl std::fmt::Display, supported: impl Into<String>) -> DiffusersConfigError {
    DiffusersConfigError::Unsupported { key: key.to_string(), found: found.to_string(), supported: supported.into() }
}

const DOWN: &str = "DownBlock2D";
const ATTN_DOWN: &str = "AttnDownBlock2D";
const UP: &str = "UpBlock2D";
const ATTN_UP: &str = "AttnUpBlock2D";

/// Reads a `config.json` of diffusers' `UNet2DModel`.
pub fn from_diffusers_config(json: &str) -> Result<UNetConfig> {
    let value: Value = serde_json::from_str(json).map_err(|e| DiffusersConfigError::NotJson(e.to_string()))?;
    let map = value.as_object().ok_or_else(|| DiffusersConfigError::NotJson(format!("it is {value}")))?;
    let config = Reader(Fields { map }).config()?;
    config.validate()?;
    Ok(config)
}

/// Writes `config` as a `UNet2DModel` `config.json` that `UNet2DModel.from_pretrained` loads.
pub fn to_diffusers_config(config: &UNetConfig) -> String {
    let down: Vec<&str> = config.attention.iter().map(|&a| if a { ATTN_DOWN } else { DOWN }).collect();
    let up: Vec<&str> = config.attention.iter().rev().map(|&a| if a { ATTN_UP } else { UP }).collect();
    let value = json!({
        "_class_name": "UNet2DModel",
        "_diffusers_version": "0.42.1",
        "act_fn": "silu",
        "add_attention": config.add_attention,
        "attention_head_dim": config.attention_head_dim,
        "attn_norm_num_groups": null,
        "block_out_channels": config.block_out_channels,
        "center_input_sample": config.center_input_sample,
        "class_embed_type": null,
        "down_block_types": down,
        "downsample_padding": config.downsample_padding,
        "downsample_type": "conv",
        "dropout": config.dropout,
        "flip_sin_to_cos": config.flip_sin_to_cos,
        "freq_shift": config.freq_shift,
        "in_channels": config.in_channels,
        "layers_per_block": config.layers_per_block,
        "mid_block_scale_factor": 1,
        "mid_block_type": "UNetMidBlock2D",
        "norm_eps": config.norm_eps,
        "norm_num_groups": config.norm_num_groups,
        "num_class_embeds": config.num_class_embeds,
        "num_train_timesteps": null,
        "out_channels": config.out_channels,
        "resnet_time_scale_shift": "default",
        "sample_size": config.sample_size,
        "time_embedding_dim": config.time_embedding_dim,
        "time_embedding_type": "positional",
        "up_block_types": up,
        "upsample_type": "conv",
    });
    serde_json::to_string_pretty(&value).expect("JSON serialises")
}

/// `config.json`'s fields, and the reading of `UNet2DModel`'s options from them.
struct Reader<'a>(Fields<'a>);

impl<'a> std::ops::Deref for Reader<'a> {
    type Target = Fields<'a>;
    fn deref(&self) -> &Fields<'a> {
        &self.0
    }
}

impl Reader<'_> {
    fn strings(&self, key: &str, default: &[&str]) -> Result<Vec<String>> {
        match self.get(key) {
            None => Ok(default.iter().map(|s| s.to_string()).collect()),
            Some(v) => v
                .as_array()
                .and_then(|a| a.iter().map(|s| s.as_str().map(str::to_string)).collect())
                .ok_or_else(|| wrong(key, "a list of names", v)),
        }
    }

    /// A string option that must have one value (its default, or `null` where that is the default).
    fn only(&self, key: &str, supported: Option<&str>) -> Result<()> {
        let found = self.get(key);
        let ok = match (found, supported) {
            (None, _) => true,
            (Some(v), Some(s)) => v.as_str() == Some(s),
            (Some(_), None) => false,
        };
        if ok {
            return Ok(());
        }
        let want = supported.map_or("null".to_string(), |s| format!("\"{s}\""));
        Err(unsupported(key, found.unwrap_or(&Value::Null), want))
    }

    fn config(&self) -> Result<UNetConfig> {
        if let Some(class) = self.get("_class_name").and_then(Value::as_str)
            && class != "UNet2DModel"
        {
            return Err(unsupported("_class_name", class, "UNet2DModel"));
        }
        self.only("time_embedding_type", Some("positional"))?;
        self.only("mid_block_type", Some("UNetMidBlock2D"))?;
        self.only("downsample_type", Some("conv"))?;
        self.only("upsample_type", Some("conv"))?;
        self.only("act_fn", Some("silu"))?;
        self.only("resnet_time_scale_shift", Some("default"))?;
        // A learned vector per class label (`num_class_embeds`) only: class embeddings of
        // the timestep or identity kind are not implemented.
        self.only("class_embed_type", None)?;
        if self.f64("mid_block_scale_factor", 1.0)? != 1.0 {
            return Err(unsupported("mid_block_scale_factor", &self.map["mid_block_scale_factor"], "1"));
        }

        let sample_size = match self.get("sample_size") {
            None => return Err(DiffusersConfigError::Missing { key: "sample_size", why: "the image size must be known" }),
            Some(Value::Array(hw)) if hw.len() == 2 && hw[0] == hw[1] => Fields::usize_value("sample_size", &hw[0])?,
            Some(v @ Value::Array(_)) => return Err(unsupported("sample_size", v, "square images")),
            Some(v) => Fields::usize_value("sample_size", v)?,
        };
        let block_out_channels = match self.get("block_out_channels") {
            None => vec![224, 448, 672, 896],
            Some(v) => v
                .as_array()
                .ok_or_else(|| wrong("block_out_channels", "a list of whole numbers", v))?
                .iter()
                .enumerate()
                .map(|(i, c)| Fields::usize_value(&format!("block_out_channels[{i}]"), c))
                .collect::<std::result::Result<_, FieldError>>()?,
        };
        let down = self.strings("down_block_types", &[DOWN, ATTN_DOWN, ATTN_DOWN, ATTN_DOWN])?;
        let up = self.strings("up_block_types", &[ATTN_UP, ATTN_UP, ATTN_UP, UP])?;
        if down.len() != block_out_channels.len() || up.len() != down.len() {
            return Err(DiffusersConfigError::BlockCounts { channels: block_out_channels.len(), down: down.len(), up: up.len() });
        }
        let mut attention = Vec::with_capacity(down.len());
        for (i, name) in down.iter().enumerate() {
            attention.push(match name.as_str() {
                DOWN => false,
                ATTN_DOWN => true,
                other => return Err(unsupported(&format!("down_block_types[{i}]"), other, format!("{DOWN} and {ATTN_DOWN}"))),
            });
        }
        for (i, name) in up.iter().enumerate() {
            let mirrored = if attention[down.len() - 1 - i] { ATTN_UP } else { UP };
            if name != mirrored {
                let mirror = format!("{mirrored}: the up path mirrors the down path");
                return Err(unsupported(&format!("up_block_types[{i}]"), name, mirror));
            }
        }
        let norm_num_groups = self.usize("norm_num_groups", 32)?;
        if let Some(groups) = self.get("attn_norm_num_groups")
            && groups.as_u64() != Some(norm_num_groups as u64)
        {
            return Err(unsupported("attn_norm_num_groups", groups, "null or norm_num_groups"));
        }
        let attention_head_dim = match self.map.get("attention_head_dim") {
            None => Some(8), // diffusers' default when the key is absent
            Some(Value::Null) => None,
            Some(v) => Some(Fields::usize_value("attention_head_dim", v)?),
        };
        Ok(UNetConfig {
            sample_size,
            in_channels: self.usize("in_channels", 3)?,
            out_channels: self.usize("out_channels", 3)?,
            block_out_channels,
            attention,
            layers_per_block: self.usize("layers_per_block", 2)?,
            attention_head_dim,
            norm_num_groups,
            norm_eps: self.f64("norm_eps", 1e-5)?,
            dropout: self.f64("dropout", 0.0)?,
            flip_sin_to_cos: self.bool("flip_sin_to_cos", true)?,
            freq_shift: self.f64("freq_shift", 0.0)?,
            downsample_padding: self.usize("downsample_padding", 1)?,
            center_input_sample: self.bool("center_input_sample", false)?,
            time_embedding_dim: match self.get("time_embedding_dim") {
                None => None,
                Some(v) => Some(Fields::usize_value("time_embedding_dim", v)?),
            },
            add_attention: self.bool("add_attention", true)?,
            num_class_embeds: match self.get("num_class_embeds") {
                None => None,
                Some(v) => Some(Fields::usize_value("num_class_embeds", v)?),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Preset;

    /// google/ddpm-cifar10-32's config.json (the DDPM paper's CIFAR-10 model on the Hub).
    const DDPM_CIFAR10: &str = r#"{
        "_class_name": "UNet2DModel", "_diffusers_version": "0.0.4", "act_fn": "silu",
        "attention_head_dim": null, "block_out_channels": [128, 256, 256, 256],
        "center_input_sample": false,
        "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"],
        "downsample_padding": 0, "flip_sin_to_cos": false, "freq_shift": 1, "in_channels": 3,
        "layers_per_block": 2, "mid_block_scale_factor": 1, "norm_eps": 1e-06, "norm_num_groups": 32,
        "out_channels": 3, "sample_size": 32, "time_embedding_type": "positional",
        "up_block_types": ["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"]
    }"#;

    #[test]
    fn the_ddpm_cifar10_config_is_our_preset() {
        let mut preset = Preset::DdpmCifar10.config();
        preset.dropout = 0.0; // a training setting; the Hub config leaves it at its default
        assert_eq!(from_diffusers_config(DDPM_CIFAR10).unwrap(), preset);
    }

    #[test]
    fn written_configs_read_back_unchanged() {
        for &preset in Preset::ALL {
            let config = preset.config();
            assert_eq!(from_diffusers_config(&to_diffusers_config(&config)).unwrap(), config);
        }
        let conditional = Preset::Tiny.config().with_num_class_embeds(Some(11));
        let json = to_diffusers_config(&conditional);
        assert_eq!(serde_json::from_str::<Value>(&json).unwrap()["num_class_embeds"], 11);
        assert_eq!(from_diffusers_config(&json).unwrap(), conditional);
    }

    #[test]
    fn unsupported_options_are_named() {
        let with = |key: &str, value: &str| {
            let mut v: Value = serde_json::from_str(DDPM_CIFAR10).unwrap();
            v[key] = serde_json::from_str(value).unwrap();
            from_diffusers_config(&v.to_string()).unwrap_err().to_string()
        };
        let cases = [
            ("down_block_types", r#"["DownBlock2D", "SkipDownBlock2D", "DownBlock2D", "DownBlock2D"]"#, "down_block_types[1] = SkipDownBlock2D"),
            ("time_embedding_type", r#""fourier""#, "time_embedding_type = \"fourier\" is not supported"),
            ("resnet_time_scale_shift", r#""scale_shift""#, "resnet_time_scale_shift"),
            ("class_embed_type", r#""timestep""#, "class_embed_type = \"timestep\" is not supported (only null)"),
            ("class_embed_type", r#""identity""#, "class_embed_type = \"identity\" is not supported (only null)"),
            ("num_class_embeds", "0", "num_class_embeds must be positive"),
            ("_class_name", r#""UNet2DConditionModel""#, "UNet2DConditionModel"),
            ("up_block_types", r#"["UpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"]"#, "the up path mirrors the down path"),
            ("sample_size", "[32, 64]", "only square"),
        ];
        for (key, value, expected) in cases {
            let message = with(key, value);
            assert!(message.contains(expected), "{key}: {message}");
        }
        // Keys UNet2DModel does not take are ignored, as diffusers ignores them.
        let mut v: Value = serde_json::from_str(DDPM_CIFAR10).unwrap();
        v["some_future_key"] = 1.into();
        assert!(from_diffusers_config(&v.to_string()).is_ok());
    }
    /// The configs a new user tried in the "nothing breaks" issue: each crashed the process
    /// (panic, abort while allocating, NaN samples); each is now refused, naming the field.
    #[test]
    fn impossible_configs_are_refused_by_name() {
        let with = |key: &str, value: &str| {
            let mut v: Value = serde_json::from_str(DDPM_CIFAR10).unwrap();
            v[key] = serde_json::from_str(value).unwrap();
            from_diffusers_config(&v.to_string())
        };
        for (key, value, expected) in [
            ("sample_size", "0", "sample_size must be positive, not 0"),
            ("sample_size", "1000000", "sample_size = 1000000 is too large"),
            ("sample_size", "[0, 0]", "sample_size must be positive, not 0"),
            ("layers_per_block", "1000000000", "layers_per_block = 1000000000 is too large"),
            ("block_out_channels", "[1000000000, 256, 256, 256]", "block_out_channels[0] = 1000000000 is too large"),
            ("block_out_channels", "[128, -256, 256, 256]", "block_out_channels[1] must be a whole number, not -256"),
            ("num_class_embeds", "1000000000000", "num_class_embeds = 1000000000000"),
            ("num_class_embeds", "18446744073709551615", "num_class_embeds = 18446744073709551615"),
            ("norm_eps", "-1e-6", "norm_eps = -0.000001: it must be a positive number"),
            ("norm_eps", "0", "norm_eps = 0: it must be a positive number"),
            ("dropout", "2.5", "dropout = 2.5"),
            ("norm_num_groups", "0", "norm_num_groups must be positive, not 0"),
            ("attention_head_dim", "0", "attention_head_dim must be positive, not 0"),
            ("in_channels", "0", "in_channels must be positive, not 0"),
            ("time_embedding_dim", "0", "time_embedding_dim must be positive, not 0"),
        ] {
            let message = with(key, value).expect_err(key).to_string();
            assert!(message.contains(expected), "{key} = {value}: {message:?} should say {expected:?}");
        }
        // A caller can tell the kinds apart (the CLI and the tab word them; a fixer can match).
        assert!(matches!(with("sample_size", "[32, 64]"), Err(DiffusersConfigError::Unsupported { key, .. }) if key == "sample_size"));
        assert!(matches!(with("layers_per_block", "1000000000"), Err(DiffusersConfigError::Invalid(_))));
        assert!(matches!(with("dropout", "\"high\""), Err(DiffusersConfigError::Field(FieldError::WrongType { expected: "a number", .. }))));
        assert!(matches!(from_diffusers_config("[1]"), Err(DiffusersConfigError::NotJson(_))));
    }
}

