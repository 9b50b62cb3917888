//! Sampling in the session: grids, the trajectory strip, DDPM beside DDIM, the forward panel.

use burn::tensor::Tensor;

use super::Session;
use crate::data::values_grid;
use crate::diffusion::{RandomStream, SamplerKind, SamplerName, Schedule, q_sample};
use crate::model::{UNet, UNetConfig};
use crate::pipeline::{Guidance, SampleRun};
use crate::web::browser::{now_ms, yield_now};
use crate::web::worker::gpu::read_values;
use crate::web::protocol::{Canvas, Picture, Update};

/// `[B, C, S, S]` values in [−1, 1] as a picture message with its RGBA bytes.
fn picture(values: &[f32], count: usize, channels: usize, size: usize, columns: usize) -> (Picture, Vec<u8>) {
    let image = values_grid(values, count, channels, size, columns).to_rgba8();
    (Picture { width: image.width(), height: image.height() }, image.into_raw())
}

/// Columns of the sampling strip.
const STRIP: usize = 10;

/// What the Sampling panel sampled last, and how.
pub(super) struct Sampling {
    /// The shape and values of the last samples (for their download).
    pub last: Option<(Vec<usize>, Vec<f32>)>,
    /// The guidance of the last Sample press, which the previews reuse.
    pub guidance: f64,
    /// The trained example, once loaded (the Sampling panel samples it beside the run's model).
    pub example: Option<SampleModel>,
}

/// A model the Sampling panel samples: this run's EMA weights, or the trained example.
#[derive(Clone)]
pub(super) struct SampleModel {
    pub model: UNet,
    pub config: UNetConfig,
    pub schedule: Schedule,
}

impl Session {
    /// The trained example if `example` (an error until it is loaded), else the run's EMA
    /// weights (a clone shares their tensors).
    pub(super) fn sample_model(&self, example: bool) -> Result<SampleModel, String> {
        if example {
            return self.sampling.example.clone().ok_or_else(|| "Load the trained example first.".into());
        }
        let t = &self.training.trainer;
        Ok(SampleModel { model: t.ema.clone(), config: t.model_config.clone(), schedule: t.schedule.clone() })
    }

    /// Samples a grid from `model` with the fixed seed, yielding between steps: for the
    /// Sampling panel (`panel`), its grid and x_t (top) over x̂_0 (bottom) of the first image at
    /// [`STRIP`] evenly spaced steps; else the training panel's preview.
    pub(super) async fn sample(
        &mut self,
        kind: SamplerKind,
        model: &SampleModel,
        what: &str,
        panel: bool,
        classes: Option<Vec<usize>>,
    ) -> Result<(), String> {
        let config = &model.config;
        let (count, c, s) = (self.settings.spec.count, config.in_channels, config.sample_size);
        let start = now_ms();
        let mut run = self.run(config, kind, &model.schedule, count, classes)?;
        let len = run.len();
        let columns = STRIP.min(len);
        let keep: Vec<usize> = (1..=columns).map(|k| k * len / columns - 1).collect();
        let (mut top, mut bottom) = (Vec::new(), Vec::new());
        while let Some(out) = run.step(&model.model) {
            if panel && keep.contains(&(run.index - 1)) {
                top.extend(read_values(out.prev_sample.slice(0..1)).await?);
                bottom.extend(read_values(out.pred_x0.slice(0..1)).await?);
            }
            self.out.send(Update::Status(format!("{what}: step {}/{len}…", run.index)));
            yield_now(0).await;
        }
        let values = read_values(run.sample).await?;
        let seconds = (now_ms() - start) / 1000.0;
        let (grid, rgba) = picture(&values, count, c, s, (count as f64).sqrt().ceil() as usize);
        let canvas = if panel { Canvas::Sampled } else { Canvas::Samples };
        self.out.send_with(Update::Picture(canvas, grid), vec![rgba]);
        if panel {
            top.extend(bottom);
            let (strip, rgba) = picture(&top, 2 * columns, c, s, columns);
            self.out.send_with(Update::Picture(Canvas::Trajectory, strip), vec![rgba]);
        }
        self.out.send(Update::HasSamples);
        self.out.send(Update::Status(format!("{what}: {len} {} steps in {seconds:.1} s.", kind.family())));
        self.sampling.last = Some((vec![count, c, s, s], values));
        Ok(())
    }

    /// A sampling run of this session's model from the sample seed. A class-conditional model
    /// is guided toward `classes`, or through all its classes in turn (image i: class i mod K).
    /// Dynamic thresholding is refused: it sorts each image's values, which burn 0.22 does on
    /// the host with a blocking read, and a browser's GPU can only be read asynchronously.
    pub(super) fn run(
        &self,
        config: &UNetConfig,
        kind: SamplerKind,
        schedule: &Schedule,
        count: usize,
        classes: Option<Vec<usize>>,
    ) -> Result<SampleRun, String> {
        if schedule.config.thresholding {
            return Err("This model's scheduler config asks for dynamic thresholding (\"thresholding\": true), which the tab cannot run: it sorts each image's values, and the browser's GPU cannot sort in burn 0.22. Sample it with the command line (tabdiffusion sample), which can.".into());
        }
        let run = SampleRun::new(config, kind, schedule, count, self.settings.spec.seed, &self.device);
        let Some(k) = config.num_classes() else { return Ok(run) };
        let classes = classes.unwrap_or_else(|| (0..k).collect());
        run.with_guidance(config, Guidance::cycling(&classes, count, self.sampling.guidance)).map_err(|e| e.to_string())
    }

    /// DDPM (all T steps) beside DDIM-50, both from the same x_T (the sample seed).
    pub(super) async fn compare(&mut self, model: &SampleModel) -> Result<(), String> {
        let config = &model.config;
        let count = self.settings.spec.count.min(8);
        let (c, s) = (config.in_channels, config.sample_size);
        let mut both = Vec::new();
        let mut times = Vec::new();
        let ddim_steps = self.settings.spec.sample_steps;
        let schedule = &model.schedule;
        let ddpm = SamplerKind::new(SamplerName::Ddpm, 0, 0.0, None, &schedule.config);
        for kind in [ddpm, SamplerKind::new(SamplerName::Ddim, ddim_steps, 0.0, None, &schedule.config)] {
            let start = now_ms();
            let mut run = self.run(config, kind, schedule, count, None)?;
            while run.step(&model.model).is_some() {
                self.out.send(Update::Status(format!("Comparing: {} step {}/{}…", kind.family(), run.index, run.len())));
                yield_now(0).await;
            }
            both.extend(read_values(run.sample).await?);
            times.push((now_ms() - start) / 1000.0);
        }
        let (grid, rgba) = picture(&both, 2 * count, c, s, count);
        self.out.send_with(Update::Picture(Canvas::Compare, grid), vec![rgba]);
        self.out.send(Update::Status(format!(
            "DDPM, {} steps: {:.1} s (top); DDIM, {ddim_steps} steps: {:.1} s (bottom); same starting noise.",
            schedule.len(),
            times[0],
            times[1]
        )));
        Ok(())
    }

    /// x_0, ε and x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε for training image `index` (ε fixed by the
    /// seed, so only t moves the picture).
    pub(super) async fn forward(&mut self, index: usize, t: usize) -> Result<(), String> {
        if self.data.is_empty() {
            return Err("No training images yet.".into());
        }
        let index = index.min(self.data.len() - 1);
        let t = t.min(self.training.trainer.schedule.len() - 1);
        let x0 = self.data.batch(&[index], &self.device);
        let noise = RandomStream::new(self.settings.spec.seed).normal(x0.dims(), &self.device);
        let x_t = q_sample(&self.training.trainer.schedule, x0.clone(), noise.clone(), &[t]);
        let values = read_values(Tensor::cat(vec![x0, noise.clamp(-1.0, 1.0), x_t], 0)).await?;
        let (picture, rgba) = picture(&values, 3, self.data.channels, self.data.height, 3);
        self.out.send_with(Update::Picture(Canvas::Forward, picture), vec![rgba]);
        let alpha_bar = self.training.trainer.schedule.alphas_cumprod[t];
        self.out.send(Update::ForwardNumbers { t, alpha_bar, snr: alpha_bar / (1.0 - alpha_bar) });
        Ok(())
    }
}
