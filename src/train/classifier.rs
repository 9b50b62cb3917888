//! Training a feature classifier (cross-entropy, Adam) and measuring it: the feature space of
//! `eval`.

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::data::ImageSet;
use crate::diffusion::RandomStream;
use crate::features::{Classifier, ClassifierConfig};
use crate::model::init_seeded;

/// A classifier being trained on a labelled image set.
pub struct ClassifierTrainer {
    /// The weights being trained, on the autodiff device.
    pub model: Classifier,
    pub config: ClassifierConfig,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub step: usize,
    optimizer: ModuleOptimizer,
    rng: RandomStream,
    device: Device,
}

impl ClassifierTrainer {
    pub fn new(config: ClassifierConfig, batch_size: usize, learning_rate: f64, seed: u64, device: &Device) -> Self {
        let trainable = device.clone().autodiff();
        let model = init_seeded(&trainable, seed, || config.init(&trainable));
        Self {
            model,
            config,
            batch_size,
            learning_rate,
            step: 0,
            optimizer: AdamConfig::new().init(),
            rng: RandomStream::new(seed),
            device: device.clone(),
        }
    }

    /// One Adam step on a random minibatch; returns the cross-entropy loss.
    pub fn step(&mut self, set: &ImageSet) -> Tensor<1> {
        let autodiff = self.device.clone().autodiff();
        let indices = self.rng.indices(self.batch_size, set.len());
        let images = set.batch(&indices, &autodiff);
        let labels = labels(set, &indices, &autodiff);
        let loss = CrossEntropyLossConfig::new().init(&autodiff).forward(self.model.forward(images), labels);
        let grads = GradientsParams::from_grads(loss.backward(), &self.model);
        self.model = self.optimizer.step(self.learning_rate, self.model.clone(), grads);
        self.step += 1;
        loss.detach().to_device(&self.device)
    }

    /// The trained weights, off the autodiff device.
    pub fn classifier(&self) -> Classifier {
        self.model.valid()
    }
}

fn labels(set: &ImageSet, indices: &[usize], device: &Device) -> Tensor<1, Int> {
    let values: Vec<i64> = indices.iter().map(|&i| i64::from(set.labels[i])).collect();
    Tensor::from_data(TensorData::new(values, [indices.len()]), device)
}

/// Fraction of `set` classified correctly, in batches of `batch`.
pub async fn accuracy(model: &Classifier, set: &ImageSet, batch: usize, device: &Device) -> Result<f64, String> {
    let mut correct = 0usize;
    let all: Vec<usize> = (0..set.len()).collect();
    for chunk in all.chunks(batch.max(1)) {
        let predicted = model.forward(set.batch(chunk, device)).argmax(1).flatten::<1>(0, 1);
        let truth = labels(set, chunk, device);
        let hits = predicted.equal(truth).int().sum().into_data_async().await.map_err(|e| format!("{e:?}"))?;
        correct += hits.iter::<i64>().next().unwrap_or(0) as usize;
    }
    Ok(correct as f64 / set.len().max(1) as f64)
}

