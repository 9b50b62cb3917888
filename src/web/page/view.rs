//! The page's state (signals the worker's updates set) and its channel to the worker.

use std::cell::RefCell;

use leptos::prelude::*;
use leptos::prelude::Update as _;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::Closure;
use web_sys::{ErrorEvent, MessageEvent, Worker, WorkerOptions, WorkerType};

use crate::diffusion::Objective;
use crate::model::Preset;
use crate::spec::RunSpec;
use crate::web::kernels::KernelPath;

use crate::web::browser::{adapter_facts, describe, download, query, query_param};
use crate::web::protocol::{Canvas, Command, Holder, Notice, Picture, QualityPoint, Update, decode, encode};
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
    fn apply(&self, update: Update, mut bytes: Vec<Vec<u8>>) {
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

/// The kernels the training worker runs on: `?kernels=` where the address names them, else
/// the core's rule for this browser's adapter ([`KernelPath::for_adapter`]), with why.
pub async fn kernel_choice() -> (KernelPath, String) {
    let asked = query_param("kernels").map(|name| name.parse::<KernelPath>());
    if let Some(Ok(path)) = asked {
        return (path, "?kernels= in the address".into());
    }
    let adapter = adapter_facts().await;
    let why = match &adapter {
        None => "no WebGPU adapter".into(),
        Some(facts) if facts.is_software() => format!("a software adapter ({facts})"),
        Some(facts) => format!("a hardware adapter ({facts})"),
    };
    let why = match asked {
        Some(Err(e)) => format!("{why}; ?kernels= ignored: {e}"),
        _ => why,
    };
    (KernelPath::for_adapter(adapter.as_ref()), why)
}

/// Starts `worker.js` (this same wasm module, or its tuned build: `kernels`, as a module
/// worker) with the page's query as its name (see [`query`]), `kernels=` set to the choice.
pub fn start_worker(view: View, kernels: (KernelPath, String)) -> Result<(), String> {
    let options = WorkerOptions::new();
    options.set_type(WorkerType::Module);
    let name = web_sys::UrlSearchParams::new_with_str(&query()).map_err(describe)?;
    name.set("kernels", kernels.0.name());
    options.set_name(&String::from(name.to_string()));
    view.kernels_asked.set(kernels);
    let worker = Worker::new_with_options("./worker.js", &options).map_err(describe)?;
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| match decode::<Update>(&event.data()) {
        Ok((update, bytes)) => view.apply(update, bytes),
        Err(message) => view.error.set(Notice::new("The page and its training worker misunderstood each other.", message)),
    });
    worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    // The worker died (a panic ends a wasm module). A panic has already said what it was doing
    // (worker::report_panics); anything else gets this message.
    let on_error = Closure::<dyn FnMut(ErrorEvent)>::new(move |event: ErrorEvent| {
        view.running.set(false);
        view.ready.set(false);
        if !view.error.get_untracked().reload {
            view.error.set(
                Notice::new(
                    "The training worker stopped (the GPU may have been lost or run out of memory). Your run is saved in this browser as of its last save; reload the page to resume it, with a smaller batch (Settings) if memory ran out.",
                    event.message(),
                )
                .with_reload(),
            );
        }
    });
    worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    on_error.forget();
    WORKER.with(|w| *w.borrow_mut() = Some(worker));
    Ok(())
}

