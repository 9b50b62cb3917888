//! The page's state (signals the worker's updates set) and its channel to the worker.

use std::cell::RefCell;

use leptos::prelude::*;
use leptos::prelude::Update as _;
use web_sys::Worker;

use crate::diffusion::Objective;
use crate::model::Preset;
use crate::spec::RunSpec;
use crate::web::kernels::{KernelPath, KernelWatch};

use crate::web::browser::{download, query, query_param};
use crate::web::protocol::{Canvas, Command, Holder, Notice, Picture, QualityPoint, Update, encode};
use crate::web::settings::Settings;

/// Everything the page shows, as signals the worker's updates write.
#[derive(Clone, Copy)]
pub struct View {
    pub status: RwSignal<String>,
    pub error: RwSignal<Notice>,
    pub banner: RwSignal<Notice>,
    /// The step of the run's last save in this browser.
    pub saved_step: RwSignal<Option<usize>>,
    /// Whether this tab holds the saved run (trains and saves it).
    pub holder: RwSignal<Holder>,
    pub backend: RwSignal<String>,
    /// The kernels the page asked the worker to run on, and why ([`kernel_choice`]).
    pub kernels_asked: RwSignal<(KernelPath, String)>,
    /// The kernels the worker runs on, in words.
    pub kernels: RwSignal<String>,
    /// The tuned build's tuning in this visit: operations tuned, kernels compiled.
    pub tuning: RwSignal<(usize, usize)>,
    /// The watch over the worker's tuned kernels ([`kernel_watch`]).
    pub watch: RwSignal<KernelWatch>,
    /// Where this browser remembers a failure of the tuned kernels on this adapter and build
    /// (`kernels::memory_key`); none without a hardware adapter.
    pub memory: RwSignal<Option<String>>,
    /// Why the page runs the plain kernels after the tuned ones failed (empty: they did not).
    pub fallback: RwSignal<String>,
    /// Press Train once the (replacement) worker is ready.
    pub resume_on_ready: RwSignal<bool>,
    /// Train was pressed, and training has not stopped since.
    pub wants_training: RwSignal<bool>,
    /// Counts the workers started: a timer or an event of a replaced worker is stale.
    pub worker_generation: RwSignal<u32>,
    pub ready: RwSignal<bool>,
    pub running: RwSignal<bool>,
    pub step: RwSignal<usize>,
    pub images_per_s: RwSignal<f64>,
    /// Every step's loss, for the chart and the mean of the last 10.
    pub losses: RwSignal<Vec<f32>>,
    /// (step, loss on the fixed batch) at each step it was measured.
    pub fixed_losses: RwSignal<Vec<(usize, f32)>>,
    pub images_loaded: RwSignal<usize>,
    /// Dataset name, image count, and T.
    pub dataset: RwSignal<(String, usize, usize)>,
    /// Class names of a class-conditional model (empty: unconditional).
    pub classes: RwSignal<Vec<String>>,
    pub model_card: RwSignal<String>,
    /// The loss the model in the worker trains with; until the worker says, a new model's
    /// with the URL's settings.
    pub objective: RwSignal<Objective>,
    /// The settings of a resumed run, for the Settings panel.
    /// The run's model preset (if it is one) and run spec, as the worker last said.
    pub run_spec: RwSignal<Option<(Option<Preset>, RunSpec)>>,
    pub samples: RwSignal<Option<(Picture, Vec<u8>)>>,
    pub sampled: RwSignal<Option<(Picture, Vec<u8>)>>,
    pub trajectory: RwSignal<Option<(Picture, Vec<u8>)>>,
    pub forward: RwSignal<Option<(Picture, Vec<u8>)>>,
    pub compare: RwSignal<Option<(Picture, Vec<u8>)>>,
    /// t, ᾱ_t, SNR of the forward panel.
    pub forward_numbers: RwSignal<Option<(usize, f64, f64)>>,
    pub has_samples: RwSignal<bool>,
    pub bench: RwSignal<String>,
    /// The query to load once the worker has removed the saved run (Reset, new settings).
    pub after_forget: RwSignal<Option<String>>,
    /// Every quality measurement of this page's run, in order.
    pub quality: RwSignal<Vec<QualityPoint>>,
    /// The quality measurement's progress, or why it cannot run.
    pub quality_note: RwSignal<String>,
    /// What the trained example is, once loaded.
    pub example: RwSignal<Option<String>>,
}

impl View {
    pub fn new() -> Self {
        Self {
            status: RwSignal::new("Starting…".into()),
            error: RwSignal::new(Notice::default()),
            banner: RwSignal::new(Notice::default()),
            saved_step: RwSignal::new(None),
            holder: RwSignal::new(Holder::ThisTab),
            backend: RwSignal::new(String::new()),
            kernels_asked: RwSignal::new((KernelPath::Plain, String::new())),
            kernels: RwSignal::new(String::new()),
            tuning: RwSignal::new((0, 0)),
            watch: RwSignal::new(KernelWatch::Off),
            memory: RwSignal::new(None),
            fallback: RwSignal::new(String::new()),
            resume_on_ready: RwSignal::new(false),
            wants_training: RwSignal::new(false),
            worker_generation: RwSignal::new(0),
            ready: RwSignal::new(false),
            running: RwSignal::new(false),
            step: RwSignal::new(0),
            images_per_s: RwSignal::new(0.0),
            losses: RwSignal::new(Vec::new()),
            fixed_losses: RwSignal::new(Vec::new()),
            images_loaded: RwSignal::new(0),
            dataset: RwSignal::new((String::new(), 0, 1000)),
            classes: RwSignal::new(Vec::new()),
            model_card: RwSignal::new(String::new()),
            objective: RwSignal::new(Settings::from_query(query_param).unwrap_or_default().objective()),
            run_spec: RwSignal::new(None),
            samples: RwSignal::new(None),
            sampled: RwSignal::new(None),
            trajectory: RwSignal::new(None),
            forward: RwSignal::new(None),
            compare: RwSignal::new(None),
            forward_numbers: RwSignal::new(None),
            has_samples: RwSignal::new(false),
            bench: RwSignal::new(String::new()),
            after_forget: RwSignal::new(None),
            quality: RwSignal::new(Vec::new()),
            quality_note: RwSignal::new(String::new()),
            example: RwSignal::new(None),
        }
    }

    /// Applies one update from the worker.
    pub fn apply(&self, update: Update, mut bytes: Vec<Vec<u8>>) {
        match update {
            Update::Status(s) => self.status.set(s),
            Update::Error(notice) => self.error.set(notice),
            Update::Banner(notice) => self.banner.set(notice),
            Update::Saved(step) => self.saved_step.set(Some(step)),
            Update::Holder(holder) => self.holder.set(holder),
            Update::Backend(s) => self.backend.set(s),
            Update::Kernels(path) => self.kernels.set(match self.kernels_asked.get_untracked() {
                (asked, why) if asked == path => format!("{}: {why}", path.describe()),
                (asked, _) => format!("{}: the {} build did not load (the browser's console says why)", path.describe(), asked.name()),
            }),
            Update::Tuned { tuned, compiled } => {
                self.tuning.set((tuned, compiled));
                if self.running.get_untracked() {
                    self.status.set(format!("Training… tuning kernels: {tuned} operations tuned"));
                }
            }
            // For the kernel watch, which saw it before this.
            Update::Diverged { .. } => {}
            Update::Ready => self.ready.set(true),
            Update::Running(r) => self.running.set(r),
            Update::Step { step, images_per_s } => {
                self.step.set(step);
                self.images_per_s.set(images_per_s);
            }
            Update::Losses { reset, values } => self.losses.update(|l| {
                if reset {
                    l.clear();
                }
                l.extend(values);
            }),
            Update::FixedLosses { reset, points } => self.fixed_losses.update(|l| {
                if reset {
                    l.clear();
                }
                l.extend(points);
            }),
            Update::ImagesLoaded(n) => self.images_loaded.set(n),
            Update::Dataset { name, images, timesteps } => self.dataset.set((name, images, timesteps)),
            Update::Classes(names) => self.classes.set(names),
            Update::ModelCard { text, objective } => {
                self.model_card.set(text);
                self.objective.set(objective);
            }
            Update::RunSpec { preset, spec } => self.run_spec.set(Some((preset, spec))),
            Update::Picture(canvas, picture) => {
                let target = match canvas {
                    Canvas::Samples => self.samples,
                    Canvas::Sampled => self.sampled,
                    Canvas::Trajectory => self.trajectory,
                    Canvas::Forward => self.forward,
                    Canvas::Compare => self.compare,
                };
                target.set(Some((picture, bytes.pop().unwrap_or_default())));
            }
            Update::ForwardNumbers { t, alpha_bar, snr } => self.forward_numbers.set(Some((t, alpha_bar, snr))),
            Update::HasSamples => self.has_samples.set(true),
            Update::Bench(s) => self.bench.set(s),
            Update::Quality(Some(point)) => self.quality.update(|q| q.push(point)),
            Update::Quality(None) => self.quality.set(Vec::new()),
            Update::QualityNote(note) => self.quality_note.set(note),
            Update::Example(what) => self.example.set(Some(what)),
            Update::Forgotten => {
                let search = self.after_forget.get_untracked().unwrap_or_else(query);
                if let Some(window) = web_sys::window() {
                    let _ = window.location().set_search(&search);
                }
            }
            Update::Download { name, mime } => {
                if let Err(message) = download(&bytes.pop().unwrap_or_default(), &name, &mime) {
                    self.error.set(Notice::new("The download could not be offered.", message));
                }
            }
        }
    }
}

impl Default for View {
    fn default() -> Self {
        Self::new()
    }
}

thread_local! {
    static WORKER: RefCell<Option<Worker>> = const { RefCell::new(None) };
}

/// Removes the saved run, then loads the page with `search` (a new model, or a reset).
pub fn forget_then_load(view: View, search: String) {
    view.after_forget.set(Some(search));
    send(Command::Forget, Vec::new());
}

/// Sends a command (and its byte payloads) to the training worker.
pub fn send(command: Command, bytes: Vec<Vec<u8>>) {
    WORKER.with(|w| {
        if let Some(worker) = w.borrow().as_ref() {
            let (message, transfer) = encode(&command, bytes);
            if let Err(e) = worker.post_message_with_transfer(&message, &transfer) {
                web_sys::console::error_1(&e);
            }
        }
    });
}

/// The page's training worker from now on (`kernel_watch::start_worker` starts it).
pub fn set_worker(worker: Worker) {
    WORKER.with(|w| *w.borrow_mut() = Some(worker));
}

/// Ends the training worker (the kernel watch replaces it); its late events are ignored.
pub fn stop_worker(view: View) {
    view.worker_generation.update(|g| *g += 1);
    if let Some(worker) = WORKER.with(|w| w.borrow_mut().take()) {
        worker.terminate();
    }
}
