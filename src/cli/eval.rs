//! `eval`: FID, precision and recall of a model's samples against a dataset's test split, in
//! the feature space of a classifier trained with `train-classifier` or of pytorch-fid's
//! Inception-v3, beside the same metrics for the dataset's own training images (the floor a
//! perfect model would reach).

use std::path::PathBuf;

use burn::tensor::{Device, Tensor};
use clap::Args;

use super::sample::SamplerArgs;
use super::pth::read_state_dict;
use super::{Backend, CliResult, Split, load_split, model_source, read_file};
use crate::checkpoint::{ClassifierCard, load_classifier};
use crate::data::ImageSet;
use crate::eval::{DEFAULT_K, Features};
use crate::features::{Classifier, ClassifierConfig, ClassifierKind, FidInception};
use crate::pipeline::{QualityReference, QualitySamples, check_classifier};
use crate::features::{FEATURE_BATCH, features};
use crate::spec::RunSpec;
use crate::train::accuracy;

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// The model: a weights file, a diffusers folder or a preset.
    #[arg(long)]
    pub model: String,
    /// Tiled dataset folder (written by `data`): its test split is the reference.
    #[arg(long, default_value = "www/data/mnist")]
    pub data: PathBuf,
    /// Feature network, from `train-classifier` on the same dataset (default
    /// classifier.safetensors).
    #[arg(long, conflicts_with = "inception")]
    pub classifier: Option<PathBuf>,
    /// Measure in Inception-v3's 2048-d pool features instead, as papers do: pytorch-fid's
    /// weight file, `pt_inception-2015-12-05-6726825d.pth`.
    #[arg(long)]
    pub inception: Option<PathBuf>,
    /// Images on each side (samples, reference images, floor images).
    #[arg(long, default_value_t = 1000)]
    pub count: usize,
    /// The split the samples are compared with; the other split gives the floor. Papers
    /// compare with the training set (CIFAR-10: 50,000 samples against its 50,000 training
    /// images); the test split keeps the reference out of what the model trained on.
    #[arg(long, value_enum, default_value = "test")]
    pub against: Against,
    #[command(flatten)]
    pub sampling: SamplerArgs,
    /// Images per sampling batch; batch k starts from seed + k.
    #[arg(long, default_value_t = RunSpec::SMALL_DATA.sample_batch)]
    pub batch: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: Backend,
    /// For a class-conditional model: guide sample i to class i mod K with this scale w, and
    /// also report how often the classifier names the class asked for (its test accuracy
    /// bounds this). Without it, such a model samples unconditionally.
    #[arg(long)]
    pub guidance: Option<f64>,
    /// Print one JSON line instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Against {
    Test,
    Train,
}

/// The network whose features the metrics compare.
enum FeatureNet {
    Classifier { net: Box<Classifier>, config: ClassifierConfig, card: ClassifierCard, path: PathBuf },
    Inception(Box<FidInception>),
}

impl FeatureNet {
    fn load(args: &EvalArgs, device: &Device) -> CliResult<Self> {
        if let Some(path) = &args.inception {
            let net = FidInception::from_state_dict(&read_state_dict(path)?, device)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            return Ok(Self::Inception(Box::new(net)));
        }
        let path = args.classifier.clone().unwrap_or_else(|| PathBuf::from("classifier.safetensors"));
        let (net, config, card) = load_classifier(&read_file(&path)?, device).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Self::Classifier { net: Box::new(net), config, card, path })
    }

    /// The metric's name: "FID (LeNet-5 features)" is not the FID of papers.
    fn short_name(&self) -> &'static str {
        match self {
            Self::Classifier { config, .. } => match config.kind {
                ClassifierKind::LeNet => "LeNet-5",
                ClassifierKind::ResNet => "ResNet",
            },
            Self::Inception(_) => "Inception-v3",
        }
    }

    fn describe(&self, dim: usize) -> String {
        match self {
            Self::Classifier { card, .. } => {
                format!("{} ({dim}-d, {:.2}% test accuracy)", self.short_name(), 100.0 * card.test_accuracy)
            }
            Self::Inception(_) => format!("Inception-v3 (pytorch-fid weights, {dim}-d pool features)"),
        }
    }

    fn embed(&self, images: Tensor<4>) -> CliResult<Features> {
        let n = images.dims()[0].max(1);
        let values = match self {
            Self::Classifier { net, .. } => pollster::block_on(features(images, FEATURE_BATCH, |x| net.features(x)))?,
            Self::Inception(net) => pollster::block_on(features(images, 50, |x| net.features(x)))?,
        };
        Features::new(values.len() / n, values).map_err(|e| e.to_string())
    }
}

/// The first `n` images of a set as a tensor in [−1, 1].
fn first(set: &ImageSet, n: usize, device: &Device) -> Tensor<4> {
    let indices: Vec<usize> = (0..n).collect();
    set.batch(&indices, device)
}

pub fn run(args: EvalArgs) -> CliResult {
    if args.count < 2 * DEFAULT_K || args.batch == 0 {
        return Err(format!("--count must be at least {} and --batch at least 1", 2 * DEFAULT_K));
    }
    args.sampling.check()?;
    let device = args.backend.device();
    let (manifest, train) = load_split(&args.data, Split::Train)?;
    let (_, test) = load_split(&args.data, Split::Test)?;
    let source = model_source(&args.model)?;
    source.config.check_batch(args.batch).map_err(|e| format!("--batch: {e}"))?;
    let (c, s) = (source.config.in_channels, source.config.sample_size);
    if (c, s) != (manifest.channels, manifest.height) {
        return Err(format!(
            "the model makes {s}×{s}×{c} images; {} has {}×{}×{}",
            manifest.name, manifest.height, manifest.width, manifest.channels
        ));
    }
    let net = FeatureNet::load(&args, &device)?;
    if let FeatureNet::Classifier { config, card, path, .. } = &net {
        check_classifier(card, config, &manifest.name, s, c).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let n = args.count;
    let ((reference, reference_name), (other, other_name)) = match args.against {
        Against::Test => ((&test, "test"), (&train, "train")),
        Against::Train => ((&train, "train"), (&test, "test")),
    };
    if reference.len() < n {
        return Err(format!("--count {n} is more than the {} {reference_name} images", reference.len()));
    }
    // The floor takes as many images of the other split as it has, up to n (CIFAR-10 has
    // 10,000 test images against 50,000 training images).
    let floor_count = n.min(other.len());
    if floor_count < 2 * DEFAULT_K {
        return Err(format!("the {other_name} split has {} images: too few for the floor", other.len()));
    }
    let model = source.build(&device, args.seed).map_err(|e| e.to_string())?;
    let schedule = args.sampling.schedule(&source.schedule)?;
    let kind = args.sampling.kind(&schedule);
    let classifier = match &net {
        FeatureNet::Classifier { net, config, .. } => Some((net, config)),
        FeatureNet::Inception(_) => None,
    };
    let classes = match (args.guidance, source.config.num_classes(), classifier) {
        (None, ..) => None,
        (Some(_), _, None) => {
            return Err("--guidance asks a classifier which class each sample shows: give --classifier, not --inception".into());
        }
        (Some(_), None, _) => return Err(format!("--guidance: {} is not class-conditional", args.model)),
        (Some(_), Some(k), Some((_, config))) if k != config.num_classes => {
            return Err(format!("--guidance: the model has {k} classes and the classifier {}", config.num_classes));
        }
        (Some(_), Some(k), Some(_)) => Some(k),
    };

    // Samples, rounded to 8-bit pixels as an image file would hold them; with guidance, image i
    // (over all batches) is of class i mod K.
    let guidance = classes.zip(args.guidance);
    let sampling = QualitySamples::new(&source.config, kind, &schedule, (n, args.batch, args.seed), guidance, &device).map_err(|e| e.to_string())?;
    let mut sampled = 0;
    let samples = sampling.finish(&model, |batch| {
        sampled += batch.dims()[0];
        eprintln!("sampled {sampled} / {n}");
        batch.into_data().try_to_vec::<f32>().expect("f32 samples")
    })?;
    let class_accuracy = match (classes, classifier) {
        (Some(_), Some((classifier, _))) => Some(pollster::block_on(accuracy(classifier, &samples, FEATURE_BATCH, &device))?),
        _ => None,
    };

    let start = std::time::Instant::now();
    let real = net.embed(first(reference, n, &device))?;
    let dim = real.dim();
    let generated = net.embed(first(&samples, n, &device))?;
    let floor_features = net.embed(first(other, floor_count, &device))?;
    let seconds = start.elapsed().as_secs_f64();
    let embedded = 2 * n + floor_count;
    eprintln!("features of {embedded} images in {seconds:.1} s ({:.2} images/s)", embedded as f64 / seconds);
    let reference = QualityReference::new(real, &floor_features)?;
    let (model_scores, floor) = (reference.score(&generated)?, reference.floor);
    let features_name = net.short_name();
    let sampler = match args.guidance {
        Some(w) => format!("{}, guided to class i mod K with w = {w}", kind.describe()),
        None => kind.describe(),
    };
    if args.json {
        let json = serde_json::json!({
            "model": args.model, "dataset": manifest.name, "count": n, "against": reference_name, "sampler": sampler,
            "features": net.describe(dim),
            "fid": model_scores.fid, "precision": model_scores.precision, "recall": model_scores.recall,
            "floor_count": floor_count,
            "floor_fid": floor.fid, "floor_precision": floor.precision, "floor_recall": floor.recall,
            "class_accuracy": class_accuracy,
        });
        println!("{json}");
    } else {
        println!(
            "{} vs {n} images of the {} {reference_name} split: {n} samples, {sampler}, seed {}; features: {}, k = {DEFAULT_K}",
            args.model,
            manifest.name,
            args.seed,
            net.describe(dim)
        );
        println!("{:<30} {:>22} {:>10} {:>8}", "", format!("FID ({features_name} features)"), "precision", "recall");
        let floor_name = format!("{floor_count} {other_name} images (floor)");
        for (name, sc) in [("model samples", &model_scores), (floor_name.as_str(), &floor)] {
            println!("{name:<30} {:>22.3} {:>10.3} {:>8.3}", sc.fid, sc.precision, sc.recall);
        }
        if let Some(hit) = class_accuracy {
            println!("guided samples the classifier puts in the class asked for: {:.1}%", 100.0 * hit);
        }
    }
    Ok(())
}
