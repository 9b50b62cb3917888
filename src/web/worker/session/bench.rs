//! The tab's benchmark (`?bench=N`): training and DDIM-50 throughput, measured as
//! `tabdiffusion bench` measures them natively ([`Bench`] holds what is measured).

use burn::module::Module;

use super::Session;
use crate::pipeline::Bench;
use crate::web::browser::{now_ms, yield_now};
use crate::web::protocol::Update;
use crate::web::worker::gpu::{read_scalar, read_values};

impl Session {
    /// One training step, its loss read back (the read waits for the GPU).
    async fn timed_step(&mut self) -> Result<(), String> {
        let batch = self.training.trainer.next_labelled_batch(&self.data).map_err(|e| e.to_string())?;
        let loss = self.training.trainer.step_batch(batch);
        read_scalar(loss).await.map(|_| ())
    }

    /// Training and DDIM-50 throughput, measured as `tabdiffusion bench` does natively.
    pub(super) async fn bench(&mut self, steps: usize) -> Result<String, String> {
        let batch = self.training.trainer.config.batch_size;
        self.out.send(Update::Status("Benchmark: warming up…".into()));
        self.timed_step().await?;
        let start = now_ms();
        for i in 0..steps {
            self.out.send(Update::Status(format!("Benchmark: training step {}/{steps}…", i + 1)));
            self.timed_step().await?;
        }
        let seconds = |start: f64| (now_ms() - start) / 1000.0;
        let train_seconds = seconds(start);

        let (config, schedule) = (&self.training.trainer.model_config, &self.training.trainer.schedule);
        let mut warm = Bench::sample_run(config, schedule, batch, &self.device);
        warm.step(&self.training.trainer.ema);
        read_values(warm.sample).await?;
        let start = now_ms();
        let mut run = Bench::sample_run(config, schedule, batch, &self.device);
        while run.step(&self.training.trainer.ema).is_some() {
            self.out.send(Update::Status(format!("Benchmark: DDIM step {}/{}…", run.index, run.len())));
            yield_now(0).await;
        }
        read_values(run.sample).await?;
        let sample_seconds = seconds(start);
        self.out.send(Update::Status("Benchmark done.".into()));
        let backend = format!("browser-{}", self.backend.to_lowercase());
        let params = self.training.trainer.model.num_params();
        Ok(Bench::report(&self.training.model_name, &backend, batch, params, steps, train_seconds, sample_seconds).to_json())
    }
}
