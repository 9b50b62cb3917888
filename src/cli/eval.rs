//! `eval`: FID, precision and recall of a model's samples against a dataset's test split, in
//! the feature space of a classifier trained with `train-classifier`, beside the same metrics
//! for the dataset's own training images (the floor a perfect model would reach).

use std::path::PathBuf;

use burn::tensor::{Device, Tensor};
use clap::Args;

use super::sample::{SamplerArgs, sample_values};
use super::{Backend, CliResult, Split, load_split, model_source, read};
use crate::checkpoint::load_classifier;
use crate::data::{ImageSet, to_pixels};
use crate::diffusion::Schedule;
use crate::eval::{DEFAULT_K, Features, fid, precision_recall};
use crate::model::{Classifier, ClassifierKind};
use crate::pipeline::{Guidance, SampleRun};
use crate::train::{accuracy, features};

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// The model: a weights file, a diffusers folder or a preset.
    #[arg(long)]
    pub model: String,
    /// Tiled dataset folder (written by `data`): its test split is the reference.
    #[arg(long, default_value = "www/data/mnist")]
    pub data: PathBuf,
    /// Feature network, from `train-classifier` on the same dataset.
    #[arg(long, default_value = "classifier.safetensors")]
    pub classifier: PathBuf,
    /// Images on each side (samples, test images, training images).
    #[arg(long, default_value_t = 1000)]
    pub count: usize,
    #[command(flatten)]
    pub sampling: SamplerArgs,
    /// Images per sampling batch; batch k starts from seed + k.
    #[arg(long, default_value_t = 100)]
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

/// FID and precision / recall of one comparison.
struct Scores {
    fid: f64,
    precision: f64,
    recall: f64,
}

fn scores(real: &Features, other: &Features) -> CliResult<Scores> {
    let fid = fid(real, other).map_err(|e| e.to_string())?;
    let pr = precision_recall(real, other, DEFAULT_K).map_err(|e| e.to_string())?;
    Ok(Scores { fid, precision: pr.precision, recall: pr.recall })
}

fn embed(classifier: &Classifier, images: Tensor<4>) -> CliResult<Features> {
    let n = images.dims()[0].max(1);
    let values = pollster::block_on(features(classifier, images, 500))?;
    Features::new(values.len() / n, values).map_err(|e| e.to_string())
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
    let (classifier, classifier_config, card) =
        load_classifier(&read(&args.classifier)?, &device).map_err(|e| format!("{}: {e}", args.classifier.display()))?;
    let (manifest, train) = load_split(&args.data, Split::Train)?;
    let (_, test) = load_split(&args.data, Split::Test)?;
    if card.dataset != manifest.name {
        return Err(format!(
            "{} was trained on {}, not {}: its features would not mean much here",
            args.classifier.display(),
            card.dataset,
            manifest.name
        ));
    }
    let source = model_source(&args.model)?;
    let (c, s) = (source.config.in_channels, source.config.sample_size);
    if (c, s) != (manifest.channels, manifest.height) || (c, s) != (classifier_config.in_channels, classifier_config.sample_size) {
        return Err(format!(
            "the model makes {s}×{s}×{c} images; {} has {}×{}×{} and the classifier takes {}×{}×{}",
            manifest.name,
            manifest.height,
            manifest.width,
            manifest.channels,
            classifier_config.sample_size,
            classifier_config.sample_size,
            classifier_config.in_channels
        ));
    }
    let n = args.count;
    if train.len() < n || test.len() < n {
        return Err(format!("--count {n} is more than {} has ({} train, {} test)", manifest.name, train.len(), test.len()));
    }
    let model = source.build(&device)?;
    let schedule = Schedule::new(source.schedule.clone());
    let classes = match (args.guidance, source.config.num_classes()) {
        (None, _) => None,
        (Some(_), None) => return Err(format!("--guidance: {} is not class-conditional", args.model)),
        (Some(_), Some(k)) if k != classifier_config.num_classes => {
            return Err(format!("--guidance: the model has {k} classes and the classifier {}", classifier_config.num_classes));
        }
        (Some(_), Some(k)) => Some(k),
    };

    // Samples, rounded to 8-bit pixels as an image file would hold them; with guidance, image i
    // (over all batches) is of class i mod K.
    let mut pixels = Vec::with_capacity(n * c * s * s);
    let mut intended = Vec::new();
    let mut k = 0;
    while pixels.len() < n * c * s * s {
        let done = pixels.len() / (c * s * s);
        let count = args.batch.min(n - done);
        let mut run = SampleRun::new(&source.config, args.sampling.kind(), &schedule, count, args.seed + k, &device);
        if let (Some(classes), Some(scale)) = (classes, args.guidance) {
            let batch: Vec<usize> = (done..done + count).map(|i| i % classes).collect();
            intended.extend(batch.iter().map(|&c| c as u8));
            run = run.with_guidance(&source.config, Guidance { classes: batch, scale }).map_err(|e| e.to_string())?;
        }
        pixels.extend(to_pixels(&sample_values(run, &model), count, c, s, s));
        k += 1;
        eprintln!("sampled {} / {n}", pixels.len() / (c * s * s));
    }
    let samples = ImageSet::new(s, s, c, pixels, intended).map_err(|e| e.to_string())?;
    let class_accuracy = match classes {
        Some(_) => Some(pollster::block_on(accuracy(&classifier, &samples, 500, &device))?),
        None => None,
    };

    let real = embed(&classifier, first(&test, n, &device))?;
    let dim = real.dim();
    let model_scores = scores(&real, &embed(&classifier, first(&samples, n, &device))?)?;
    let floor = scores(&real, &embed(&classifier, first(&train, n, &device))?)?;

    let features_name = match classifier_config.kind {
        ClassifierKind::LeNet => "LeNet-5",
        ClassifierKind::ResNet => "ResNet",
    };
    let sampler = match args.guidance {
        Some(w) => format!("{}, guided to class i mod K with w = {w}", args.sampling.describe()),
        None => args.sampling.describe(),
    };
    if args.json {
        let json = serde_json::json!({
            "model": args.model, "dataset": manifest.name, "count": n, "sampler": sampler,
            "features": format!("{features_name} ({dim}-d, {:.2}% test accuracy)", 100.0 * card.test_accuracy),
            "fid": model_scores.fid, "precision": model_scores.precision, "recall": model_scores.recall,
            "floor_fid": floor.fid, "floor_precision": floor.precision, "floor_recall": floor.recall,
            "class_accuracy": class_accuracy,
        });
        println!("{json}");
    } else {
        println!(
            "{} vs the {} test split: {n} images each, {sampler}, seed {}; features: {features_name} ({dim}-d, {:.2}% test accuracy), k = {DEFAULT_K}",
            args.model,
            manifest.name,
            args.seed,
            100.0 * card.test_accuracy
        );
        println!("{:<24} {:>22} {:>10} {:>8}", "", format!("FID ({features_name} features)"), "precision", "recall");
        for (name, sc) in [("model samples", &model_scores), ("train images (floor)", &floor)] {
            println!("{name:<24} {:>22.3} {:>10.3} {:>8.3}", sc.fid, sc.precision, sc.recall);
        }
        if let Some(hit) = class_accuracy {
            println!("guided samples the classifier puts in the class asked for: {:.1}%", 100.0 * hit);
        }
    }
    Ok(())
}
