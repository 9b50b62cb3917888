//! The page: it starts the training worker, sends it commands and draws what it reports.

use leptos::prelude::*;

use crate::web::browser::offline_copy_ready;
use crate::web::page::panels::{ForwardPanel, SettingsPanel, TrainingPanel, WeightsPanel};
use crate::web::page::playground::PlaygroundPanel;
use crate::web::page::sampling_panel::SamplingPanel;
use crate::web::protocol::{Command, Holder, Notice};
use crate::web::page::kernel_watch::{FallbackView, kernel_choice, start_worker};
use crate::web::page::view::{View, send};
use crate::train::TrainedExample;

/// A notice in words; its technical detail behind a "Details" toggle; a Reload button when
/// reloading (which resumes the saved run) is the way on.
#[component]
fn NoticeView(notice: RwSignal<Notice>, class: &'static str, testid: &'static str, saved_step: RwSignal<Option<usize>>) -> impl IntoView {
    let text = move || {
        let notice = notice.get();
        match saved_step.get() {
            Some(step) if notice.reload => format!("{} (The last save is at step {step}.)", notice.text),
            _ => notice.text,
        }
    };
    let reload = |_| {
        if let Some(window) = web_sys::window() {
            let _ = window.location().reload();
        }
    };
    view! {
        <div class=class hidden=move || notice.get().text.is_empty()>
            <p data-testid=testid>{text}</p>
            <details hidden=move || notice.get().detail.is_empty()>
                <summary>"Details"</summary>
                <pre data-testid=format!("{testid}-detail")>{move || notice.get().detail}</pre>
            </details>
            <button data-testid=format!("{testid}-reload") on:click=reload hidden=move || !notice.get().reload>"Reload and resume"</button>
        </div>
    }
}

/// Says when another tab holds the saved run, and offers to take it over.
#[component]
fn HolderView(view: View) -> impl IntoView {
    let text = move || match view.holder.get() {
        Holder::ThisTab => String::new(),
        Holder::OtherTab => "This run is open in another tab, which trains and saves it. This tab samples from its last save (read-only); Take over moves the run here: the other tab saves and stops.".into(),
        Holder::HandedOver => "This run is now open in another tab. This tab can still sample (read-only); Take over brings the run back here.".into(),
    };
    view! {
        <div class="banner" hidden=move || view.holder.get() == Holder::ThisTab>
            <p data-testid="holder">{text}</p>
            <button data-testid="take-over" on:click=move |_| send(Command::TakeOver, Vec::new())
                disabled=move || !view.ready.get()>"Take over"</button>
        </div>
    }
}

/// The whole app.
#[component]
pub fn App() -> impl IntoView {
    let view = View::new();
    let example = TrainedExample::MNIST;
    // Under the offline copy's control, so that the worker and its data are kept for offline.
    leptos::task::spawn_local(async move {
        offline_copy_ready().await;
        if let Err(message) = start_worker(view, kernel_choice(view).await) {
            view.error.set(Notice::new("This browser could not start the page's training worker (a module Web Worker): try a current Chrome, Edge, Safari or Firefox.", message));
        }
    });
    view! {
        <main>
            <h1>"Diffusion in a tab"</h1>
            <p class="lede">
                "A U-Net learns to remove the noise added to images (DDPM's Algorithm 1, with the target, weight and schedule that 2. Training writes out), on this page's GPU, in a worker so the page never freezes. "
                "Watch the forward process, train, sample with DDIM, DPM-Solver++ or DDPM, and take the weights away: they load in diffusers, and diffusers models load here."
            </p>
            <p class="example">
                <button data-testid="load-example" on:click=move |_| send(Command::LoadExample, Vec::new())
                    disabled=move || !view.ready.get()>{example.label}</button>
                {format!(
                    " ({}, {} training images) and sample it in 3. Sampling, before or while your own model trains.",
                    example.preset, example.images
                )}
            </p>
            <NoticeView notice=view.banner class="banner" testid="banner" saved_step=view.saved_step />
            <FallbackView view=view />
            <p class="status" data-testid="status">{move || view.status.get()}</p>
            <NoticeView notice=view.error class="error" testid="error" saved_step=view.saved_step />
            <HolderView view=view />
            <pre class="bench" data-testid="bench" hidden=move || view.bench.get().is_empty()>{move || view.bench.get()}</pre>
            <SettingsPanel view=view />
            <ForwardPanel view=view />
            <TrainingPanel view=view />
            <SamplingPanel view=view />
            <WeightsPanel view=view />
            <PlaygroundPanel />
        </main>
    }
}
