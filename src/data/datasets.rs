//! The datasets the tab serves from `data/<name>/` and `tabdiffusion data <name>` prepares.

/// A named dataset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Dataset {
    /// Handwritten digits, 28×28 gray, 60,000 + 10,000.
    #[default]
    Mnist,
    /// Zalando's clothing pictures, 28×28 gray, 60,000 + 10,000.
    FashionMnist,
    /// 32×32 colour photos in 10 classes, 50,000 + 10,000.
    Cifar10,
}

named!(serde Dataset, "dataset", [Mnist => "mnist", FashionMnist => "fashion-mnist", Cifar10 => "cifar10"]);

impl Dataset {
    /// What a menu shows.
    pub fn label(self) -> &'static str {
        match self {
            Self::Mnist => "MNIST (28×28 digits)",
            Self::FashionMnist => "Fashion-MNIST (28×28 clothes)",
            Self::Cifar10 => "CIFAR-10 (32×32 colour photos)",
        }
    }

    /// Where the tab and `train` read it, relative to the site (`www/`).
    pub fn folder(self) -> String {
        format!("data/{}", self.name())
    }
}
