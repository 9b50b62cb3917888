//! Image classifiers whose penultimate activations serve as the feature space of `eval`
//! (FID, precision, recall) where Inception-v3 is not available: a LeNet-5-style net for
//! MNIST / Fashion-MNIST and a small ResNet for CIFAR-10.

use burn::config::Config;
use burn::module::Module;
use crate::ops::{conv2d, group_norm};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::limits;

/// Which network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClassifierKind {
    /// LeNet-5 (LeCun et al. 1998) with ReLU and max pooling: 84 features.
    LeNet,
    /// A ResNet of three stages (32, 64, 128 channels, two blocks each) with GroupNorm and
    /// global average pooling: 128 features.
    ResNet,
}

#[derive(Config, Debug, PartialEq)]
pub struct ClassifierConfig {
    pub kind: ClassifierKind,
    /// Image height and width.
    pub sample_size: usize,
    pub in_channels: usize,
    pub num_classes: usize,
}

/// A residual block: (conv3×3, GroupNorm, ReLU) twice, plus the input.
#[derive(Module, Debug)]
pub struct ResidualBlock {
    pub conv1: Conv2d,
    pub norm1: GroupNorm,
    pub conv2: Conv2d,
    pub norm2: GroupNorm,
}

impl ResidualBlock {
    fn new(channels: usize, device: &Device) -> Self {
        Self {
            conv1: conv(channels, channels, 3, 1, device),
            norm1: GroupNormConfig::new(8, channels).init(device),
            conv2: conv(channels, channels, 3, 1, device),
            norm2: GroupNormConfig::new(8, channels).init(device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = relu(group_norm(&self.norm1, conv2d(&self.conv1, x.clone())));
        relu(group_norm(&self.norm2, conv2d(&self.conv2, h)) + x)
    }
}

/// One ResNet stage: a stride-2 convolution into more channels (not in the first stage), then
/// residual blocks.
#[derive(Module, Debug)]
pub struct Stage {
    pub down: Option<Conv2d>,
    pub blocks: Vec<ResidualBlock>,
}

/// See [`ClassifierKind`]. `features` gives the penultimate activations, `forward` the logits.
#[derive(Module, Debug)]
pub struct Classifier {
    /// LeNet: conv 5×5 → 6, conv 5×5 → 16. ResNet: the stem.
    pub convs: Vec<Conv2d>,
    pub pool: MaxPool2d,
    pub stages: Vec<Stage>,
    pub global_pool: AdaptiveAvgPool2d,
    /// LeNet: 16·s·s → 120 → 84. ResNet: none.
    pub hidden: Vec<Linear>,
    pub head: Linear,
}

fn conv(cin: usize, cout: usize, kernel: usize, stride: usize, device: &Device) -> Conv2d {
    let p = kernel / 2;
    Conv2dConfig::new([cin, cout], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        .init(device)
}

impl ClassifierConfig {
    /// Checks what `init` would otherwise panic on, or allocate without bound, in words: the
    /// sizes are those of a dataset ([`limits`]).
    pub fn validate(&self) -> Result<(), String> {
        if self.num_classes < 2 || self.in_channels == 0 || self.sample_size == 0 {
            return Err("a classifier needs at least 2 classes, 1 channel and images of at least 1×1".into());
        }
        limits::at_most("classifier num_classes", self.num_classes, limits::MAX_CLASSES)?;
        limits::at_most("classifier in_channels", self.in_channels, limits::MAX_LAYER_CHANNELS)?;
        limits::at_most("classifier sample_size", self.sample_size, limits::MAX_DATASET_SIDE)?;
        if self.kind == ClassifierKind::LeNet && self.sample_size < 12 {
            return Err(format!("LeNet needs images of at least 12×12, not {0}×{0}", self.sample_size));
        }
        Ok(())
    }

    pub fn init(&self, device: &Device) -> Classifier {
        if let Err(message) = self.validate() {
            panic!("invalid classifier config: {message}");
        }
        let pool = MaxPool2dConfig::new([2, 2]).init();
        let global_pool = AdaptiveAvgPool2dConfig::new([1, 1]).init();
        match self.kind {
            ClassifierKind::LeNet => {
                // 28 → (pad 2) 28 → pool 14 → (valid 5×5) 10 → pool 5: 16·5·5 = 400 inputs.
                let side = (self.sample_size / 2 - 4) / 2;
                let second = Conv2dConfig::new([6, 16], [5, 5]).init(device);
                Classifier {
                    convs: vec![conv(self.in_channels, 6, 5, 1, device), second],
                    pool,
                    stages: Vec::new(),
                    global_pool,
                    hidden: vec![
                        LinearConfig::new(16 * side * side, 120).init(device),
                        LinearConfig::new(120, 84).init(device),
                    ],
                    head: LinearConfig::new(84, self.num_classes).init(device),
                }
            }
            ClassifierKind::ResNet => {
                let widths = [32, 64, 128];
                let stages = widths
                    .iter()
                    .enumerate()
                    .map(|(i, &c)| Stage {
                        down: (i > 0).then(|| conv(widths[i - 1], c, 3, 2, device)),
                        blocks: vec![ResidualBlock::new(c, device), ResidualBlock::new(c, device)],
                    })
                    .collect();
                Classifier {
                    convs: vec![conv(self.in_channels, widths[0], 3, 1, device)],
                    pool,
                    stages,
                    global_pool,
                    hidden: Vec::new(),
                    head: LinearConfig::new(widths[2], self.num_classes).init(device),
                }
            }
        }
    }
}

impl Classifier {
    /// Penultimate activations `[B, F]` of images `[B, C, H, W]` in [−1, 1].
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        if self.stages.is_empty() {
            let mut h = x;
            for conv in &self.convs {
                h = self.pool.forward(relu(conv2d(conv, h)));
            }
            let mut h: Tensor<2> = h.flatten(1, 3);
            for linear in &self.hidden {
                h = relu(linear.forward(h));
            }
            h
        } else {
            let mut h = relu(conv2d(&self.convs[0], x));
            for stage in &self.stages {
                if let Some(down) = &stage.down {
                    h = relu(down.forward(h));
                }
                for block in &stage.blocks {
                    h = block.forward(h);
                }
            }
            self.global_pool.forward(h).flatten(1, 3)
        }
    }

    /// Class logits `[B, classes]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.head.forward(self.features(x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_for_mnist_and_cifar() {
        let device = Device::flex();
        let lenet = ClassifierConfig::new(ClassifierKind::LeNet, 28, 1, 10).init(&device);
        let x = Tensor::<4>::zeros([2, 1, 28, 28], &device);
        assert_eq!(lenet.features(x.clone()).dims(), [2, 84]);
        assert_eq!(lenet.forward(x).dims(), [2, 10]);
        let resnet = ClassifierConfig::new(ClassifierKind::ResNet, 32, 3, 10).init(&device);
        let x = Tensor::<4>::zeros([2, 3, 32, 32], &device);
        assert_eq!(resnet.features(x.clone()).dims(), [2, 128]);
        assert_eq!(resnet.forward(x).dims(), [2, 10]);
        // LeNet on 32×32 (its original input size): 16·6·6 inputs to the first linear layer.
        let lenet32 = ClassifierConfig::new(ClassifierKind::LeNet, 32, 3, 10).init(&device);
        assert_eq!(lenet32.features(Tensor::<4>::zeros([1, 3, 32, 32], &device)).dims(), [1, 84]);
    }

    #[test]
    fn configs_beyond_the_limits_are_refused_in_words() {
        let huge = ClassifierConfig::new(ClassifierKind::ResNet, 32, 3, 1 << 40);
        assert_eq!(huge.validate().unwrap_err(), "classifier num_classes: 1099511627776; the limit is 256");
        assert!(ClassifierConfig::new(ClassifierKind::LeNet, 1 << 20, 1, 10).validate().is_err());
        assert!(ClassifierConfig::new(ClassifierKind::ResNet, 0, 3, 10).validate().is_err());
    }
}
