//! The page's training worker and its kernels: which build the worker starts on (the
//! address, else what this browser remembers for its adapter and the site's build, else the
//! adapter's kind), and the watch that restarts the run on the plain build when the tuned one
//! fails to start, crashes or stalls in its first steps, or gives a non-finite loss that the
//! plain one does not. The rules are `web::kernels`' ([`KernelWatch`]); this feeds them the
//! worker's events and acts on their verdicts.

use leptos::prelude::*;
use leptos::prelude::Update as _;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::Closure;
use web_sys::{ErrorEvent, MessageEvent, Worker, WorkerOptions, WorkerType};

use crate::web::browser::{adapter_facts, describe, query, query_param};
use crate::web::kernels::{AdapterFacts, FIRST_STEP_LIMIT, Fallback, KernelPath, KernelWatch, MEMORY_PREFIX, Verdict, memory_key, tune_store_name};
use crate::web::page::view::{View, send, set_worker, stop_worker};
use crate::web::protocol::{Command, Notice, Update, decode};

/// What the training worker is started with.
#[derive(Clone, Debug)]
pub struct WorkerStart {
    pub path: KernelPath,
    /// Why, in words, for the kernels row.
    pub why: String,
    /// Whether the address chose the kernels (`?kernels=`): then nothing is watched.
    pub chosen: bool,
    /// The tuned build's tune store for this adapter and build (`kernels::tune_store_name`).
    pub store: String,
}

/// The site's build stamp, which `scripts/dev/finish-site` writes into index.html's
/// `<meta name="tabdiffusion-build">` (a hash of the built files); "dev" where it is missing.
fn build_stamp() -> String {
    web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.query_selector("meta[name=tabdiffusion-build]").ok().flatten())
        .and_then(|meta| meta.get_attribute("content"))
        .unwrap_or_else(|| "dev".into())
}

fn local_storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

/// The kernels the training worker starts on: `?kernels=` where the address names them; else
/// the plain ones where this browser remembers that the tuned ones failed on this adapter in
/// this build (the page says so and offers to try them again); else the core's rule for the
/// adapter ([`KernelPath::for_adapter`]).
pub async fn kernel_choice(view: View) -> WorkerStart {
    let build = build_stamp();
    let adapter = adapter_facts().await;
    let store = tune_store_name(&build, adapter.as_ref().unwrap_or(&AdapterFacts::default()));
    let asked = query_param("kernels").map(|name| name.parse::<KernelPath>());
    if let Some(Ok(path)) = asked {
        return WorkerStart { path, why: "?kernels= in the address".into(), chosen: true, store };
    }
    let why = match &adapter {
        None => "no WebGPU adapter".into(),
        Some(facts) if facts.is_software() => format!("a software adapter ({facts})"),
        Some(facts) => format!("a hardware adapter ({facts})"),
    };
    let why = match asked {
        Some(Err(e)) => format!("{why}; ?kernels= ignored: {e}"),
        _ => why,
    };
    let path = KernelPath::for_adapter(adapter.as_ref());
    if let (KernelPath::Tuned, Some(facts)) = (path, &adapter) {
        let key = memory_key(&build, facts);
        view.memory.set(Some(key.clone()));
        if let Some(failed) = local_storage().and_then(|s| s.get_item(&key).ok().flatten()) {
            view.fallback.set(format!("The tuned kernels failed on this GPU at an earlier visit ({failed}), so this page runs the plain ones."));
            return WorkerStart { path: KernelPath::Plain, why: format!("{why}, where the tuned ones failed at an earlier visit"), chosen: false, store };
        }
    }
    WorkerStart { path, why, chosen: false, store }
}

/// Starts `worker.js` (this same wasm module, or its tuned build: `start.path`, as a module
/// worker) with the page's query as its name (see [`query`]), `kernels=` set to the choice and
/// `tunes=` to the tuned build's tune store, and watches its kernels ([`kernel_watch`]).
pub fn start_worker(view: View, start: WorkerStart) -> Result<(), String> {
    let options = WorkerOptions::new();
    options.set_type(WorkerType::Module);
    let name = web_sys::UrlSearchParams::new_with_str(&query()).map_err(describe)?;
    name.set("kernels", start.path.name());
    name.set("tunes", &start.store);
    options.set_name(&String::from(name.to_string()));
    view.kernels_asked.set((start.path, start.why));
    view.watch.set(KernelWatch::new(start.path, start.chosen));
    view.worker_generation.update(|g| *g += 1);
    let generation = view.worker_generation.get_untracked();
    let current = move || view.worker_generation.get_untracked() == generation;
    let worker = Worker::new_with_options("./worker.js", &options).map_err(describe)?;
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| match decode::<Update>(&event.data()) {
        Ok((update, bytes)) => {
            if current() && watch(view, &update) {
                view.apply(update, bytes);
            }
        }
        Err(message) => view.error.set(Notice::new("The page and its training worker misunderstood each other.", message)),
    });
    worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    // The worker died (a panic ends a wasm module). A panic has already said what it was doing
    // (worker::report_panics); anything else gets this message.
    let on_error = Closure::<dyn FnMut(ErrorEvent)>::new(move |event: ErrorEvent| {
        if !current() || !worker_died(view, &event.message()) {
            return;
        }
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
    set_worker(worker);
    Ok(())
}

/// Looks at an update of the current worker before the page applies it; `false`: the update
/// is dropped (the worker it came from is being replaced).
pub fn watch(view: View, update: &Update) -> bool {
    let verdict = match update {
        Update::Kernels(path) => view.watch.try_update(|w| w.on_build(*path)),
        Update::Step { step, .. } => view.watch.try_update(|w| w.on_step(*step)),
        Update::Diverged { step } => view.watch.try_update(|w| w.on_diverged(*step)),
        Update::Error(notice) if notice.reload => {
            let step = view.step.get_untracked() + 1;
            view.watch.try_update(|w| w.on_crash(view.ready.get_untracked(), step, &notice.detail))
        }
        Update::Running(false) => {
            view.wants_training.set(false);
            None
        }
        Update::Ready => {
            if view.resume_on_ready.get_untracked() {
                view.resume_on_ready.set(false);
                train(view);
            }
            None
        }
        _ => None,
    };
    act(view, verdict.unwrap_or(Verdict::Keep))
}

/// The worker died (its error event) while `started` (ready) or before.
pub fn worker_died(view: View, detail: &str) -> bool {
    let step = view.step.get_untracked() + 1;
    let started = view.ready.get_untracked();
    let verdict = view.watch.try_update(|w| w.on_crash(started, step, detail)).unwrap_or(Verdict::Keep);
    act(view, verdict)
}

/// Train: the command, and on a tuned worker that has finished no step yet, the first step's
/// timer (Train's first work, the loss on the fixed batch, already runs the tuned kernels): if
/// no step has finished when it fires, the page falls back.
pub fn train(view: View) {
    view.wants_training.set(true);
    send(Command::Train, Vec::new());
    if view.watch.with_untracked(KernelWatch::awaits_first_step) {
        let generation = view.worker_generation.get_untracked();
        arm_first_step_timer(view, generation);
    }
}

fn arm_first_step_timer(view: View, generation: u32) {
    leptos::task::spawn_local(async move {
        crate::web::browser::yield_now(i32::try_from(FIRST_STEP_LIMIT.as_millis()).unwrap_or(i32::MAX)).await;
        if view.worker_generation.get_untracked() == generation {
            let verdict = view.watch.try_update(KernelWatch::on_first_step_timer).unwrap_or(Verdict::Keep);
            act(view, verdict);
        }
    });
}

/// Acts on a verdict; `false` when the worker is being replaced.
fn act(view: View, verdict: Verdict) -> bool {
    match verdict {
        Verdict::Keep | Verdict::NotTheKernels => true,
        Verdict::FallBack(fallback) => {
            remember(view, &fallback);
            restart_on_plain(view, &fallback.to_string(), KernelWatch::Off);
            false
        }
        Verdict::CheckOnPlain { step } => {
            let words = format!("the tuned kernels gave a loss that is not a number at step {step}; the plain ones now retrain from the last save to find out whether the kernels or the learning rate did it");
            restart_on_plain(view, &words, KernelWatch::Checking { step });
            false
        }
        Verdict::Confirmed(fallback) => {
            remember(view, &fallback);
            view.fallback.set(format!("{}: this browser now runs the plain kernels on this GPU.", capitalised(&fallback.to_string())));
            true
        }
    }
}

/// Remembers for this adapter and build that the tuned kernels failed, and why; other builds'
/// entries go (a new build tries the tuned kernels again).
fn remember(view: View, fallback: &Fallback) {
    let (Some(key), Some(storage)) = (view.memory.get_untracked(), local_storage()) else { return };
    let stale: Vec<String> = (0..storage.length().unwrap_or(0))
        .filter_map(|i| storage.key(i).ok().flatten())
        .filter(|k| k.starts_with(MEMORY_PREFIX) && *k != key)
        .collect();
    for old in stale {
        let _ = storage.remove_item(&old);
    }
    let _ = storage.set_item(&key, &fallback.to_string());
}

/// Replaces the worker by one on the plain build, which resumes the run from its last save (and
/// trains on if it was training), and says why.
fn restart_on_plain(view: View, words: &str, watch: KernelWatch) {
    stop_worker(view);
    // Train was pressed and not paused since (a worker that died sent no pause).
    view.resume_on_ready.set(view.wants_training.get_untracked());
    view.ready.set(false);
    view.running.set(false);
    view.error.set(Notice::default());
    view.fallback.set(format!("{}, so this page restarted the run on the plain kernels from its last save.", capitalised(words)));
    let start = WorkerStart { path: KernelPath::Plain, why: format!("the tuned kernels failed here ({words})"), chosen: false, store: String::new() };
    if let Err(message) = start_worker(view, start) {
        view.error.set(Notice::new("The page could not restart its training worker on the plain kernels.", message));
    }
    view.watch.set(watch);
}

/// Forgets that the tuned kernels failed on this adapter, and reloads: they run again.
pub fn try_tuned_again(view: View) {
    if let (Some(key), Some(storage)) = (view.memory.get_untracked(), local_storage()) {
        let _ = storage.remove_item(&key);
    }
    if let Some(window) = web_sys::window() {
        let _ = window.location().reload();
    }
}

fn capitalised(words: &str) -> String {
    let mut chars = words.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// The fallback's box: why the page runs the plain kernels, and a button to try the tuned ones
/// again (on a hardware adapter, where they would run).
#[component]
pub fn FallbackView(view: View) -> impl IntoView {
    view! {
        <div class="banner" hidden=move || view.fallback.get().is_empty()>
            <p data-testid="fallback">{move || view.fallback.get()}</p>
            <button data-testid="try-tuned" on:click=move |_| try_tuned_again(view)
                hidden=move || view.memory.get().is_none()>"Try the tuned kernels again"</button>
        </div>
    }
}
