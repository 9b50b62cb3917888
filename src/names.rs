//! Names of things (samplers, spacings, schedules, predictions, datasets, presets): one macro
//! gives an enum its names, so that the CLI's flags, the tab's URL and menus, the worker's
//! messages and the files all read and write them the same way. An unknown name is an error
//! that lists the valid ones, never a silent fallback.

/// A name that names nothing of its kind.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{given} is not a {what} (pick one of {})", .valid.join(", "))]
pub struct UnknownName {
    /// What kind of thing was named: "sampler", "dataset", …
    pub what: &'static str,
    pub given: String,
    pub valid: Vec<&'static str>,
}

/// `named!(Type, "what", [Variant => "name", …])`: `Type::ALL` (menu order), `name()`,
/// `FromStr` (with [`UnknownName`]) and `Display`. Add `serde` first to (de)serialise by
/// name too.
macro_rules! named {
    (serde $ty:ident, $what:literal, [$($variant:ident => $name:literal),+ $(,)?]) => {
        named!($ty, $what, [$($variant => $name),+]);

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.name())
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let name = <String as serde::Deserialize>::deserialize(deserializer)?;
                name.parse().map_err(serde::de::Error::custom)
            }
        }
    };
    ($ty:ident, $what:literal, [$($variant:ident => $name:literal),+ $(,)?]) => {
        impl $ty {
            /// Every value, in menu order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The name in flags, URLs and messages.
            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $name),+
                }
            }
        }

        impl std::str::FromStr for $ty {
            type Err = $crate::names::UnknownName;

            fn from_str(given: &str) -> Result<Self, Self::Err> {
                Self::ALL.iter().copied().find(|v| v.name() == given).ok_or_else(|| $crate::names::UnknownName {
                    what: $what,
                    given: given.to_string(),
                    valid: Self::ALL.iter().map(|v| v.name()).collect(),
                })
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

#[cfg(test)]
mod tests {
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Fruit {
        Apple,
        BloodOrange,
    }

    named!(serde Fruit, "fruit", [Apple => "apple", BloodOrange => "blood-orange"]);

    #[test]
    fn names_round_trip_and_unknown_ones_list_the_valid_ones() {
        for &fruit in Fruit::ALL {
            assert_eq!(fruit.to_string().parse::<Fruit>(), Ok(fruit));
            let json = serde_json::to_string(&fruit).unwrap();
            assert_eq!(serde_json::from_str::<Fruit>(&json).unwrap(), fruit);
        }
        assert_eq!("blood-orange".parse::<Fruit>(), Ok(Fruit::BloodOrange));
        let error = "pear".parse::<Fruit>().unwrap_err();
        assert_eq!(error.to_string(), "pear is not a fruit (pick one of apple, blood-orange)");
        assert!(serde_json::from_str::<Fruit>("\"pear\"").unwrap_err().to_string().contains("pick one of apple, blood-orange"));
    }
}
