//! The steppers the shells drive: a training loop, a sampling run, a quality measurement, a
//! benchmark. The core runs the loop; the CLI
//! and the worker only render what each step reports.

mod bench;
mod quality;
mod sample;
mod train_loop;

pub use bench::{Bench, BenchReport};
pub use quality::{QualityReference, QualitySamples, QualityStep, check_classifier, embed_first};
pub use train_loop::{Cadences, StepError, StepReport, TrainLoop};
pub use sample::{Guidance, GuidanceError, SampleRun, sample_batches};
