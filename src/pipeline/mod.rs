//! The steppers the shells drive: a training loop, a sampling run, a benchmark. The core runs the loop; the CLI
//! and the worker only render what each step reports.

mod bench;
mod sample;
mod train_loop;

pub use bench::{Bench, BenchReport};
pub use train_loop::{Cadences, StepError, StepReport, TrainLoop};
pub use sample::{Guidance, GuidanceError, SampleRun, sample_batches, sample_in_batches};
