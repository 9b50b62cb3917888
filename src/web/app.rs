//! The page: controls, training numbers, the loss chart and the sample grid.

use leptos::html::Canvas;
use leptos::prelude::*;
use leptos::task::spawn_local;
use web_sys::HtmlInputElement;

use super::browser::{draw_rgba, query_param, read_file};
use super::session::{self, Command, Settings, View, send};
use crate::diffusion::{BetaSchedule, SamplerKind, Schedule, ScheduleConfig, Spacing, Variance};

/// The sampler the page's select names, with `steps` where it takes a number of steps.
pub fn sampler_kind(name: &str, steps: usize) -> SamplerKind {
    match name {
        "ddpm" => SamplerKind::Ddpm { variance: Variance::FixedSmall },
        "dpm-solver" => SamplerKind::DpmSolver { steps, spacing: Spacing::Linspace },
        _ => SamplerKind::ddim(steps),
    }
}

/// SVG polyline points for the loss chart: per-step losses averaged into at most 300 buckets,
/// log-scaled over a 300×100 box.
pub fn chart_points(losses: &[f32]) -> String {
    let bucket = losses.len().div_ceil(300).max(1);
    let logs: Vec<f32> = losses
        .chunks(bucket)
        .map(|c| (c.iter().sum::<f32>() / c.len() as f32).max(1e-6).log10())
        .collect();
    let (lo, hi) = logs.iter().fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let span = (hi - lo).max(1e-3);
    let n = logs.len().max(2) - 1;
    logs.iter()
        .enumerate()
        .map(|(i, v)| format!("{:.1},{:.1}", 300.0 * i as f32 / n as f32, 95.0 - 90.0 * (v - lo) / span))
        .collect::<Vec<_>>()
        .join(" ")
}

/// SVG polyline points of ᾱ_t over t = 0..T in a 300×100 box (ᾱ from 1 at the top to 0).
pub fn schedule_points(schedule: &Schedule) -> String {
    let n = schedule.len().max(2) - 1;
    schedule
        .alphas_cumprod
        .iter()
        .enumerate()
        .map(|(t, ab)| format!("{:.1},{:.1}", 300.0 * t as f64 / n as f64, 95.0 - 90.0 * ab))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The whole app.
#[component]
pub fn App() -> impl IntoView {
    let view = View::new();
    let sampler = RwSignal::new("ddim".to_string());
    let steps = RwSignal::new(50usize);
    match Settings::from_query(query_param) {
        Ok(settings) => {
            steps.set(settings.sample_steps);
            spawn_local(session::run(settings, view));
        }
        Err(message) => view.error.set(message),
    }
    let canvas = NodeRef::<Canvas>::new();
    Effect::new(move |_| {
        if let (Some(grid), Some(canvas)) = (view.grid.get(), canvas.get()) {
            if let Err(message) = draw_rgba(&canvas, &grid.rgba, grid.width, grid.height) {
                view.error.set(message);
            }
        }
    });
    let on_import = move |ev: leptos::ev::Event| {
        let input: HtmlInputElement = event_target(&ev);
        let Some(list) = input.files() else { return };
        let files: Vec<web_sys::File> = (0..list.length()).filter_map(|i| list.get(i)).collect();
        input.set_value("");
        if files.is_empty() {
            return;
        }
        spawn_local(async move {
            let mut read = Vec::with_capacity(files.len());
            for file in files {
                match read_file(&file).await {
                    Ok(bytes) => read.push((file.name(), bytes)),
                    Err(message) => return view.error.set(format!("{}: {message}", file.name())),
                }
            }
            send(Command::Import(read));
        });
    };
    let fmt_loss = move || view.loss.get().map_or("–".to_string(), |l| format!("{l:.4}"));
    let schedule = |beta_schedule| Schedule::new(ScheduleConfig { beta_schedule, ..Default::default() });
    let (linear, cosine) = (schedule_points(&schedule(BetaSchedule::Linear)), schedule_points(&schedule(BetaSchedule::Cosine)));

    view! {
        <main>
            <h1>"Diffusion in a tab"</h1>
            <p class="lede">
                "A U-Net learns to predict the noise added to MNIST digits (DDPM, Algorithm 1), on this page's GPU. "
                "It samples with DDIM, DPM-Solver++ or DDPM from fixed noise, and its weights load in diffusers (and diffusers models load here)."
            </p>
            <p class="banner" data-testid="banner" hidden=move || view.banner.get().is_empty()>{move || view.banner.get()}</p>
            <div class="controls">
                <button data-testid="train" on:click=move |_| send(Command::Train)
                    disabled=move || !view.ready.get() || view.running.get()>"Train"</button>
                <button data-testid="pause" on:click=move |_| send(Command::Pause)
                    disabled=move || !view.running.get()>"Pause"</button>
                <button data-testid="sample"
                    on:click=move |_| send(Command::Sample(sampler_kind(&sampler.get_untracked(), steps.get_untracked())))
                    disabled=move || !view.ready.get()>"Sample"</button>
                <select data-testid="sampler" prop:value=move || sampler.get()
                    on:change=move |ev| sampler.set(event_target_value(&ev))>
                    <option value="ddim">"DDIM (η = 0)"</option>
                    <option value="dpm-solver">"DPM-Solver++(2M)"</option>
                    <option value="ddpm">"DDPM (all T steps)"</option>
                </select>
                <label>"steps "
                    <input type="number" min="1" max="1000" data-testid="sample-steps" prop:value=move || steps.get()
                        disabled=move || sampler.get() == "ddpm"
                        on:change=move |ev| steps.set(event_target_value(&ev).parse::<usize>().unwrap_or(50).clamp(1, 1000)) />
                </label>
                <button data-testid="export" on:click=move |_| send(Command::Export)
                    disabled=move || !view.ready.get()>"Export weights"</button>
                <button data-testid="export-diffusers" on:click=move |_| send(Command::ExportDiffusers)
                    disabled=move || !view.ready.get()>"Export for diffusers (.zip)"</button>
                <label class="file">"Import weights or a diffusers folder's files "
                    <input type="file" multiple accept=".safetensors,.json" data-testid="import" on:change=on_import
                        disabled=move || !view.ready.get() />
                </label>
                <button data-testid="download-samples" on:click=move |_| send(Command::DownloadSamples)
                    disabled=move || !view.has_samples.get()>"Download samples (.npy)"</button>
            </div>
            <p class="status" data-testid="status">{move || view.status.get()}</p>
            <pre class="bench" data-testid="bench" hidden=move || view.bench.get().is_empty()>{move || view.bench.get()}</pre>
            <p class="error" data-testid="error" hidden=move || view.error.get().is_empty()>{move || view.error.get()}</p>
            <table class="stats">
                <tr><th>"backend"</th><td data-testid="backend">{move || view.backend.get()}</td></tr>
                <tr><th>"step"</th><td data-testid="step">{move || view.step.get()}</td></tr>
                <tr><th>"images/s"</th><td data-testid="images-per-s">{move || format!("{:.1}", view.images_per_s.get())}</td></tr>
                <tr><th>"loss (mean of last 10 steps)"</th><td data-testid="loss">{fmt_loss}</td></tr>
                <tr><th>"training images loaded"</th><td data-testid="images-loaded">{move || view.images_loaded.get()}</td></tr>
                <tr><th>"model"</th><td data-testid="model-card">{move || view.model_card.get()}</td></tr>
            </table>
            <div class="panels">
                <figure>
                    <svg data-testid="loss-chart" viewBox="0 0 300 100" width="300" height="100">
                        <polyline fill="none" stroke="currentColor" stroke-width="1.5"
                            points=move || chart_points(&view.loss_history.get()) />
                    </svg>
                    <figcaption>"loss per step, log scale"</figcaption>
                </figure>
                <figure>
                    <svg data-testid="schedule-chart" viewBox="0 0 300 100" width="300" height="100">
                        <polyline fill="none" stroke="currentColor" stroke-width="1.5" points=linear />
                        <polyline fill="none" stroke="currentColor" stroke-width="1.5" stroke-dasharray="4 3" points=cosine />
                    </svg>
                    <figcaption>"ᾱ"<sub>"t"</sub>" for t = 0…999: linear β (solid, DDPM) and cosine (dashed); "
                        "x"<sub>"t"</sub>" = √ᾱ"<sub>"t"</sub>" x"<sub>"0"</sub>" + √(1 − ᾱ"<sub>"t"</sub>") ε"</figcaption>
                </figure>
                <figure>
                    <canvas node_ref=canvas data-testid="samples" class="grid"></canvas>
                    <figcaption>"samples from the EMA weights (fixed seed; previews use DDIM)"</figcaption>
                </figure>
            </div>
        </main>
    }
}
