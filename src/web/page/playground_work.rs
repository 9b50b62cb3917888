//! The playground's work on the page's CPU, and the state its views draw. The network has 16k
//! parameters: on the page's CPU backend a step takes a few milliseconds, less than a WebGPU
//! round trip, so it runs here, in slices of about 10 ms between the browser's frames (never
//! blocking the page for long), not in the GPU worker. Everything it computes comes from the
//! core's [`Playground`]; what a press or an input means is `playground_logic`'s.

use burn::tensor::{Device, Tensor};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::data::{PointSet, tensor_points};
use crate::diffusion::{SamplerKind, SamplerName, Schedule};
use crate::model::state_dict::read_values;
use crate::model::{PointDenoiser, PointDenoiserConfig};
use crate::playground::Playground;
use crate::train::Trainer;
use crate::web::browser::yield_now;
use crate::web::page::plane::pen_stroke;
use crate::web::page::playground_logic::{self as logic, DRAW, Pacer, SLICE_MS, TrainPress, VIEW_MS};

/// A training run of the playground, on the page's CPU.
struct Run {
    set: PointSet,
    trainer: Trainer<PointDenoiserConfig>,
}

fn device() -> Device {
    Device::flex()
}

async fn points_of(tensor: Tensor<4>) -> Result<Vec<[f32; 2]>, String> {
    read_values(tensor).await.map(|v| tensor_points(&v)).map_err(|e| e.to_string())
}

/// Hands the thread back to the browser for a moment where the slice is over.
async fn pace(slice: &mut Pacer) {
    if slice.due(js_sys::Date::now()) {
        yield_now(0).await;
        slice.restart(js_sys::Date::now());
    }
}

/// A sampling run's path: x_T, then the sample after every step.
async fn trajectories(kind: SamplerKind, model: &PointDenoiser, schedule: &Schedule, count: usize) -> Result<Vec<Vec<[f32; 2]>>, String> {
    let mut run = Playground::sample_run(kind, schedule, count, 1, &device());
    let mut paths: Vec<Vec<[f32; 2]>> = points_of(run.sample.clone()).await?.into_iter().map(|p| vec![p]).collect();
    let mut slice = Pacer::new(SLICE_MS, js_sys::Date::now());
    while run.step(model).is_some() {
        for (path, p) in paths.iter_mut().zip(points_of(run.sample.clone()).await?) {
            path.push(p);
        }
        pace(&mut slice).await;
    }
    Ok(paths)
}

/// The playground panel's state: its run, what its controls set, and what its views draw.
#[derive(Clone, Copy)]
pub struct PlaygroundState {
    run: StoredValue<Option<Run>, LocalStorage>,
    schedule: StoredValue<Schedule, LocalStorage>,
    /// The data select's value: a shape's name, or [`DRAW`].
    pub shape: RwSignal<String>,
    pub drawn: RwSignal<Vec<[f32; 2]>>,
    pub running: RwSignal<bool>,
    /// Sampling is under way.
    pub busy: RwSignal<bool>,
    /// A stroke of the pen is under way.
    pen: RwSignal<bool>,
    pub step: RwSignal<usize>,
    pub loss: RwSignal<Option<f32>>,
    /// Steps per second since Train was last pressed.
    pub rate: RwSignal<f64>,
    pub t: RwSignal<usize>,
    pub ddim_steps: RwSignal<usize>,
    /// x_t of the data, and the score at the grid where there is a model.
    pub cloud: RwSignal<Vec<[f32; 2]>>,
    pub field: RwSignal<Vec<[f32; 2]>>,
    pub ddpm_paths: RwSignal<Vec<Vec<[f32; 2]>>>,
    pub ddim_paths: RwSignal<Vec<Vec<[f32; 2]>>>,
    pub samples: RwSignal<Vec<[f32; 2]>>,
    pub quality: RwSignal<String>,
    pub error: RwSignal<String>,
}

impl PlaygroundState {
    pub fn new() -> Self {
        let none = || RwSignal::new(Vec::new());
        Self {
            run: StoredValue::new_local(None),
            schedule: StoredValue::new_local(Schedule::new(Playground::schedule())),
            shape: RwSignal::new(logic::first_choice().to_string()),
            drawn: none(),
            running: RwSignal::new(false),
            busy: RwSignal::new(false),
            pen: RwSignal::new(false),
            step: RwSignal::new(0),
            loss: RwSignal::new(None),
            rate: RwSignal::new(0.0),
            t: RwSignal::new(0),
            ddim_steps: RwSignal::new(Playground::DEFAULT_DDIM_STEPS),
            cloud: none(),
            field: none(),
            ddpm_paths: RwSignal::new(Vec::new()),
            ddim_paths: RwSignal::new(Vec::new()),
            samples: none(),
            quality: RwSignal::new(String::new()),
            error: RwSignal::new(String::new()),
        }
    }

    /// The data of the current choice: a generated shape, or the drawn points.
    fn data(self) -> Result<PointSet, String> {
        let choice = self.shape.get_untracked();
        self.drawn.with_untracked(|drawn| logic::point_set(&choice, drawn))
    }

    /// The points the run trains on (none before Train).
    pub fn data_points(self) -> Vec<[f32; 2]> {
        self.run.with_value(|r| r.as_ref().map(|r| r.set.points.clone())).unwrap_or_default()
    }

    /// The views that follow t: x_t ~ q(x_t | x_0), and the score at t where there is a model.
    pub fn refresh(self) {
        spawn_local(async move {
            let at = self.t.get_untracked();
            let (noised, score) = match self.data() {
                Err(_) => (None, None),
                Ok(set) => self.schedule.with_value(|schedule| {
                    let noised = Playground::noised(&set, schedule, at, Playground::SAMPLES, 0, &device());
                    let grid = Playground::grid(Playground::GRID);
                    let score = self.run.with_value(|r| r.as_ref().map(|r| Playground::score(&r.trainer.ema, schedule, &grid, at, &device())));
                    (Some(noised), score)
                }),
            };
            match noised {
                Some(n) => self.cloud.set(points_of(n).await.unwrap_or_default()),
                None => self.cloud.set(self.drawn.get_untracked()),
            }
            self.field.set(match score {
                Some(s) => points_of(s).await.unwrap_or_default(),
                None => Vec::new(),
            });
        });
    }

    /// Start over: no run, nothing learned or sampled.
    pub fn reset(self) {
        self.running.set(false);
        self.run.set_value(None);
        (self.step.set(0), self.loss.set(None), self.field.set(Vec::new()), self.samples.set(Vec::new()), self.quality.set(String::new()));
        (self.ddpm_paths.set(Vec::new()), self.ddim_paths.set(Vec::new()), self.error.set(String::new()));
        self.refresh();
    }

    /// Other data (the data select's value): from t = 0, and a new run.
    pub fn choose(self, choice: String) {
        self.shape.set(choice);
        self.t.set(0);
        self.reset();
    }

    /// Clear the drawing.
    pub fn clear(self) {
        self.drawn.set(Vec::new());
        self.reset();
    }

    /// The time slider moved.
    pub fn set_t(self, text: &str) {
        self.t.set(logic::t_input(text));
        self.refresh();
    }

    /// The Train button: pause, resume, or start a run on the data (or say why not).
    pub fn train(self) {
        match TrainPress::of(self.running.get_untracked(), self.run.with_value(Option::is_some)) {
            TrainPress::Pause => return self.running.set(false),
            TrainPress::Start => match self.data() {
                Ok(set) => self.run.set_value(Some(Run { set, trainer: Playground::trainer(0, &device()) })),
                Err(e) => return self.error.set(e),
            },
            TrainPress::Resume => {}
        }
        self.error.set(String::new());
        self.running.set(true);
        spawn_local(self.train_slices());
    }

    /// Trains in slices until paused, with the loss, the speed and (now and then) the views
    /// after each.
    async fn train_slices(self) {
        let (start, start_step) = (js_sys::Date::now(), self.step.get_untracked());
        let mut views = Pacer::new(VIEW_MS, start);
        while self.running.get_untracked() {
            let slice = Pacer::new(SLICE_MS, js_sys::Date::now());
            let mut last = None;
            self.run.update_value(|r| {
                let Some(r) = r else { return };
                while slice.within(js_sys::Date::now()) {
                    let x0 = r.trainer.next_points(&r.set);
                    last = Some(r.trainer.step(x0));
                }
                self.step.set(r.trainer.step);
            });
            let Some(last) = last else { break };
            if let Ok(v) = read_values(last).await {
                self.loss.set(v.first().copied());
            }
            let now = js_sys::Date::now();
            self.rate.set(logic::steps_per_second(self.step.get_untracked().saturating_sub(start_step), now - start));
            if views.due(now) {
                self.refresh();
                views.restart(now);
            }
            yield_now(0).await;
        }
        self.refresh();
    }

    /// The Sample button: both samplers' paths and a sampled cloud with its quality.
    pub fn sample(self) {
        let Some(model) = self.run.with_value(|r| r.as_ref().map(|r| r.trainer.ema.clone())) else {
            return self.error.set("Train the model first (the Train button), then sample it.".into());
        };
        self.busy.set(true);
        spawn_local(async move {
            if let Err(e) = self.sample_views(model).await {
                self.error.set(e);
            }
            self.busy.set(false);
        });
    }

    async fn sample_views(self, model: PointDenoiser) -> Result<(), String> {
        let schedule = self.schedule.get_value();
        let ddim = SamplerKind::ddim(self.ddim_steps.get_untracked());
        let ddpm = SamplerKind::new(SamplerName::Ddpm, 0, 0.0, None, &Playground::schedule());
        self.ddim_paths.set(trajectories(ddim, &model, &schedule, Playground::TRAJECTORIES).await?);
        self.ddpm_paths.set(trajectories(ddpm, &model, &schedule, Playground::TRAJECTORIES).await?);
        let mut cloud = Playground::sample_run(ddim, &schedule, Playground::SAMPLES, 2, &device());
        let mut slice = Pacer::new(SLICE_MS, js_sys::Date::now());
        while cloud.step(&model).is_some() {
            pace(&mut slice).await;
        }
        let start = points_of(Playground::sample_run(ddim, &schedule, Playground::SAMPLES, 2, &device()).sample).await?;
        let points = points_of(cloud.sample).await?;
        let set = self.data()?;
        let distance = Playground::nearest_distance(&points, &set.points);
        let noise = Playground::nearest_distance(&start, &set.points);
        let floor = logic::fresh_distance(&self.shape.get_untracked(), &set.points);
        self.quality.set(logic::quality_text(points.len(), &ddim.describe(), distance, floor, noise));
        self.samples.set(points);
        Ok(())
    }

    /// A press on the first canvas starts a stroke (from t = 0) where the user draws; true if
    /// it did.
    pub fn pen_down(self) -> bool {
        let draws = self.shape.get_untracked() == DRAW;
        if draws {
            self.pen.set(true);
            self.t.set(0);
        }
        draws
    }

    pub fn drawing(self) -> bool {
        self.pen.get_untracked()
    }

    /// The pen at `p`: a point of the stroke where it is far enough from the last.
    pub fn pen_at(self, p: [f32; 2]) {
        self.drawn.update(|points| {
            pen_stroke(points, p);
        });
        self.cloud.set(self.drawn.get_untracked());
    }

    /// The stroke ends: a new run on the drawing.
    pub fn pen_up(self) {
        if self.pen.get_untracked() {
            self.pen.set(false);
            self.reset();
        }
    }
}
