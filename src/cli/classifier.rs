//! `train-classifier`: the feature network of `eval`, trained on a tiled dataset's labels.

use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, ValueEnum};

use super::{Backend, CliResult, Split, load_split, write_atomic};
use crate::checkpoint::{ClassifierCard, classifier_to_bytes};
use crate::features::{ClassifierConfig, ClassifierKind};
use crate::train::{ClassifierTrainer, accuracy};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KindName {
    /// LeNet-5 (84 features): MNIST, Fashion-MNIST.
    Lenet,
    /// A small ResNet (128 features): CIFAR-10.
    Resnet,
}

#[derive(Args, Debug)]
pub struct TrainClassifierArgs {
    /// Tiled dataset folder (written by `data`); its labels are the classes.
    #[arg(long, default_value = "www/data/mnist")]
    pub data: PathBuf,
    /// Network (default: lenet for gray images, resnet for colour).
    #[arg(long, value_enum)]
    pub kind: Option<KindName>,
    #[arg(long, default_value_t = 2000)]
    pub steps: usize,
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value = "classifier.safetensors")]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: Backend,
}

pub fn run(args: TrainClassifierArgs) -> CliResult {
    if args.steps == 0 || args.batch == 0 {
        return Err("--steps and --batch must be at least 1".into());
    }
    let (manifest, train) = load_split(&args.data, Split::Train)?;
    let (_, test) = load_split(&args.data, Split::Test)?;
    let classes = manifest.classes.len().max(train.labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0));
    if train.is_empty() || train.labels.len() != train.len() || classes < 2 {
        return Err(format!("{}: a classifier needs labelled images of at least 2 classes", args.data.display()));
    }
    let kind = match args.kind {
        Some(KindName::Lenet) => ClassifierKind::LeNet,
        Some(KindName::Resnet) => ClassifierKind::ResNet,
        None if manifest.channels == 1 => ClassifierKind::LeNet,
        None => ClassifierKind::ResNet,
    };
    let config = ClassifierConfig::new(kind, manifest.height, manifest.channels, classes);
    config.validate()?;
    let device = args.backend.device();
    let mut trainer = ClassifierTrainer::new(config.clone(), args.batch, args.lr, args.seed, &device);
    let start = Instant::now();
    for step in 1..=args.steps {
        let loss = trainer.step(&train).into_data().try_to_vec::<f32>().expect("f32 loss")[0];
        if !loss.is_finite() {
            return Err(format!("the loss became {loss} at step {step}; try a smaller --lr"));
        }
        if step % 100 == 0 || step == args.steps {
            println!("{{\"step\": {step}, \"loss\": {loss}, \"seconds\": {:.1}}}", start.elapsed().as_secs_f64());
        }
    }
    let model = trainer.classifier();
    let test_accuracy = pollster::block_on(accuracy(&model, &test, 500, &device))?;
    println!("{kind:?} on {}: test accuracy {:.2}% ({} test images)", manifest.name, 100.0 * test_accuracy, test.len());
    let card = ClassifierCard { dataset: manifest.name.clone(), steps: args.steps as u64, test_accuracy };
    let bytes = pollster::block_on(classifier_to_bytes(&model, &config, &card)).map_err(|e| e.to_string())?;
    write_atomic(&args.out, &bytes)?;
    println!("wrote {}", args.out.display());
    Ok(())
}
