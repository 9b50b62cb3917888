//! The page's panels: settings, the forward process, training, weights (sampling has its own
//! file, `sampling_panel.rs`). Each shows the equation it runs (MathML, which browsers render
//! without a script) in the DDPM paper's notation.

use leptos::html::Canvas as CanvasElement;
use leptos::prelude::*;
use leptos::task::spawn_local;
use web_sys::{HtmlInputElement, UrlSearchParams};

use crate::web::browser::{draw_rgba, fetch_bytes, query, query_param, read_file};
use crate::web::page::charts::{chart_points, fixed_loss_text, schedule_points, snr_points};
use crate::web::page::mathml::breakable;
use crate::web::page::objective::{training_equation, training_note};
use crate::web::protocol::{Command, Holder, Notice, Picture};
use crate::web::page::quality_chart::QualityView;
use crate::web::settings::Settings;
use crate::web::page::kernel_watch;
use crate::web::page::view::{View, forget_then_load, send};
use crate::data::{Dataset, Manifest};
use crate::diffusion::{BetaSchedule, Objective, Schedule, ScheduleConfig};
use crate::model::Preset;
use crate::spec::RunSpec;
use crate::web::kernels::KernelPath;

/// q(x_t | x_0) = N(x_t; √ᾱ_t x_0, (1 − ᾱ_t) I), ᾱ_t = ∏ (1 − β_s), SNR = ᾱ_t / (1 − ᾱ_t)
/// (Ho et al. 2020, eq. 4; Kingma et al. 2021 for the SNR).
const FORWARD_EQUATION: &str = r#"<math display="block"><mi>q</mi><mo>(</mo><msub><mi>x</mi><mi>t</mi></msub><mo>|</mo><msub><mi>x</mi><mn>0</mn></msub><mo>)</mo><mo>=</mo><mi class="cal">N</mi><mo>(</mo><msub><mi>x</mi><mi>t</mi></msub><mo>;</mo><msqrt><msub><mi>ᾱ</mi><mi>t</mi></msub></msqrt><msub><mi>x</mi><mn>0</mn></msub><mo>,</mo><mo>(</mo><mn>1</mn><mo>−</mo><msub><mi>ᾱ</mi><mi>t</mi></msub><mo>)</mo><mi mathvariant="bold">I</mi><mo>)</mo><mo>,</mo><mspace width="1em"/><msub><mi>ᾱ</mi><mi>t</mi></msub><mo>=</mo><munderover><mo>∏</mo><mrow><mi>s</mi><mo>=</mo><mn>1</mn></mrow><mi>t</mi></munderover><mo>(</mo><mn>1</mn><mo>−</mo><msub><mi>β</mi><mi>s</mi></msub><mo>)</mo><mo>,</mo><mspace width="1em"/><mtext>SNR</mtext><mo>(</mo><mi>t</mi><mo>)</mo><mo>=</mo><mfrac><msub><mi>ᾱ</mi><mi>t</mi></msub><mrow><mn>1</mn><mo>−</mo><msub><mi>ᾱ</mi><mi>t</mi></msub></mrow></mfrac></math>"#;

/// A 2D canvas that shows a picture signal.
#[component]
pub fn PictureCanvas(
    /// The picture and its RGBA bytes, once there is one.
    picture: RwSignal<Option<(Picture, Vec<u8>)>>,
    /// The `data-testid` and CSS class.
    id: &'static str,
    view: View,
) -> impl IntoView {
    let canvas = NodeRef::<CanvasElement>::new();
    Effect::new(move |_| {
        let Some(canvas) = canvas.get() else { return };
        let drawn = picture.with(|p| p.as_ref().map(|(p, rgba)| draw_rgba(&canvas, rgba, p.width, p.height)));
        if let Some(Err(message)) = drawn {
            view.error.set(Notice::new("A picture could not be drawn.", message));
        }
    });
    view! { <canvas node_ref=canvas data-testid=id class=id></canvas> }
}

/// Reads the files of a file input, then hands them to `then` (errors go to the page).
fn on_files(view: View, then: fn(Vec<(String, Vec<u8>)>)) -> impl Fn(leptos::ev::Event) {
    move |ev| {
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
                // A picked folder's files carry their path inside it (`cats/01.png`).
                let path = js_sys::Reflect::get(&file, &"webkitRelativePath".into()).ok().and_then(|p| p.as_string());
                let name = path.filter(|p| !p.is_empty()).unwrap_or_else(|| file.name());
                match read_file(&file).await {
                    Ok(bytes) => read.push((name, bytes)),
                    Err(message) => return view.error.set(Notice::new(format!("{name} could not be read."), message)),
                }
            }
            then(read);
        });
    }
}

fn send_files(files: Vec<(String, Vec<u8>)>, command: fn(Vec<String>) -> Command) {
    let (names, bytes) = files.into_iter().unzip();
    send(command(names), bytes);
}

/// Dataset, model size, schedule and optimisation settings; applying them starts a new model.
#[component]
pub fn SettingsPanel(view: View) -> impl IntoView {
    // The address's run (its preset's recipe with its overrides) until the worker says what
    // the run trains with.
    let shown = Settings::from_query(query_param).unwrap_or_default();
    let spec = shown.spec;
    let data = RwSignal::new(spec.dataset.to_string());
    let model = RwSignal::new(shown.preset.to_string());
    let schedule = RwSignal::new(spec.schedule.to_string());
    let batch = RwSignal::new(spec.batch_size.to_string());
    let lr = RwSignal::new(spec.learning_rate.to_string());
    let ema = RwSignal::new(spec.ema_decay.to_string());
    let classes = RwSignal::new(spec.class_conditional);
    // A resumed run trains with its own settings: show those, not the URL's.
    Effect::new(move |_| {
        if let Some((preset, run)) = view.run_spec.get() {
            if let Some(preset) = preset {
                model.set(preset.to_string());
            }
            schedule.set(run.schedule.to_string());
            batch.set(run.batch_size.to_string());
            lr.set(run.learning_rate.to_string());
            ema.set(run.ema_decay.to_string());
            classes.set(run.class_conditional);
        }
    });
    // The address keeps only what differs from the chosen preset's recipe.
    let apply = move |_| {
        let Ok(params) = UrlSearchParams::new_with_str(&query()) else { return };
        let recipe = model.get_untracked().parse().map_or(RunSpec::SMALL_DATA, RunSpec::for_preset);
        let fields = [
            ("data", data, recipe.dataset.to_string()),
            ("schedule", schedule, recipe.schedule.to_string()),
            ("batch", batch, recipe.batch_size.to_string()),
            ("lr", lr, recipe.learning_rate.to_string()),
            ("ema", ema, recipe.ema_decay.to_string()),
        ];
        params.set("model", &model.get_untracked());
        for (key, value, default) in fields {
            let value = value.get_untracked();
            if value == default { params.delete(key) } else { params.set(key, &value) }
        }
        match classes.get_untracked() {
            conditional if conditional == recipe.class_conditional => params.delete("classes"),
            conditional => params.set("classes", Settings::classes_param(conditional)),
        }
        forget_then_load(view, String::from(params.to_string()));
    };
    let text = move |signal: RwSignal<String>, id: &'static str| {
        view! { <input type="text" size="7" data-testid=id prop:value=move || signal.get()
            on:change=move |ev| signal.set(event_target_value(&ev)) /> }
    };
    // `webkitdirectory` (pick a whole folder) is not among Leptos' typed attributes.
    let folder = NodeRef::<leptos::html::Input>::new();
    Effect::new(move |_| {
        if let Some(input) = folder.get() {
            let _ = input.set_attribute("webkitdirectory", "");
        }
    });
    let presets = Preset::ALL.iter().map(|p| view! { <option value=p.name()>{p.description()}</option> }).collect::<Vec<_>>();
    // Each dataset's download, from its manifest, shown before it is chosen.
    let datasets = Dataset::ALL
        .iter()
        .map(|&d| {
            let size = RwSignal::new(String::new());
            spawn_local(async move { size.set(download_note(d).await) });
            view! { <option value=d.name()>{d.label()}{move || size.get()}</option> }
        })
        .collect::<Vec<_>>();
    let schedules = BetaSchedule::ALL.iter().map(|s| view! { <option value=s.name()>{s.label()}</option> }).collect::<Vec<_>>();
    view! {
        <details class="settings" open=move || !view.ready.get()>
            <summary>"Settings: dataset, model, schedule"</summary>
            <div class="controls">
                <label>"dataset "
                    <select data-testid="data" prop:value=move || data.get() on:change=move |ev| data.set(event_target_value(&ev))>
                        {datasets}
                    </select>
                </label>
                <label>"model "
                    <select data-testid="model" prop:value=move || model.get() on:change=move |ev| model.set(event_target_value(&ev))>
                        {presets}
                    </select>
                </label>
                <label>"schedule "
                    <select data-testid="schedule" prop:value=move || schedule.get() on:change=move |ev| schedule.set(event_target_value(&ev))>
                        {schedules}
                    </select>
                </label>
                <label>"batch "{text(batch, "batch")}</label>
                <label>"learning rate "{text(lr, "lr")}</label>
                <label>"EMA decay "{text(ema, "ema")}</label>
                <label><input type="checkbox" data-testid="classes" prop:checked=move || classes.get()
                    on:change=move |ev| classes.set(event_target_checked(&ev)) />" class-conditional (for guidance)"</label>
                <button data-testid="restart" on:click=apply disabled=move || !view.ready.get()>"Start a new model with these settings"</button>
            </div>
            <p class="note">"Your own images: pick a folder (one subfolder per class) or a zip of PNG/JPEG files; they are centre-cropped and resized to the model's size and never leave this tab."</p>
            <label class="file">"Train on my images "
                <input type="file" multiple accept=".png,.jpg,.jpeg,.zip" data-testid="upload-images"
                    on:change=on_files(view, |files| send_files(files, Command::UseImages)) disabled=move || !view.ready.get() />
            </label>
            <label class="file">" or a folder "
                <input type="file" node_ref=folder data-testid="upload-folder"
                    on:change=on_files(view, |files| send_files(files, Command::UseImages)) disabled=move || !view.ready.get() />
            </label>
        </details>
    }
}

/// What choosing `dataset` downloads (its training split), as its manifest records it: " — 15.2
/// MB"; or that this site has not prepared it.
async fn download_note(dataset: Dataset) -> String {
    let Ok(bytes) = fetch_bytes(&format!("{}/manifest.json", dataset.folder())).await else {
        return " — not on this site".into();
    };
    match serde_json::from_slice::<Manifest>(&bytes).ok().and_then(|m| m.train.download_size()) {
        Some(size) => format!(" — {:.1} MB", size as f64 / 1e6),
        None => String::new(),
    }
}

/// 1. The forward process: pick an image and t, see x_t; ᾱ_t and the SNR of both schedules.
#[component]
pub fn ForwardPanel(view: View) -> impl IntoView {
    let index = RwSignal::new(0usize);
    let t = RwSignal::new(250usize);
    let show = move || send(Command::Forward { index: index.get_untracked(), t: t.get_untracked() }, Vec::new());
    // The first picture as soon as the data is there.
    Effect::new(move |shown: Option<bool>| {
        let ready = view.ready.get();
        if ready && shown != Some(true) {
            show();
        }
        ready
    });
    let schedule = |beta_schedule| Schedule::new(ScheduleConfig { beta_schedule, ..Default::default() });
    let (linear, cosine) = (schedule(BetaSchedule::Linear), schedule(BetaSchedule::Cosine));
    let (linear_ab, cosine_ab) = (schedule_points(&linear), schedule_points(&cosine));
    let (linear_snr, cosine_snr) = (snr_points(&linear), snr_points(&cosine));
    let marker = move || format!("{:.1}", 300.0 * t.get() as f64 / (view.dataset.get().2.max(2) - 1) as f64);
    view! {
        <section class="panel">
            <h2>"1. The forward process: adding noise"</h2>
            <div inner_html=breakable(FORWARD_EQUATION)></div>
            <div class="controls">
                <label>"t = "{move || t.get()}" "
                    <input type="range" min="0" max=move || view.dataset.get().2.saturating_sub(1) data-testid="forward-t"
                        prop:value=move || t.get() disabled=move || !view.ready.get()
                        on:input=move |ev| { t.set(event_target_value(&ev).parse().unwrap_or(0)); show(); } />
                </label>
                <label>"training image # "
                    <input type="number" min="0" data-testid="forward-index" prop:value=move || index.get()
                        disabled=move || !view.ready.get()
                        on:change=move |ev| { index.set(event_target_value(&ev).parse().unwrap_or(0)); show(); } />
                </label>
            </div>
            <div class="row">
                <figure>
                    <PictureCanvas picture=view.forward id="forward" view=view />
                    <figcaption>"x"<sub>"0"</sub>", ε, x"<sub>"t"</sub>" · "
                        <span data-testid="forward-numbers">{move || view.forward_numbers.get().map_or(String::new(), |(t, ab, snr)|
                            format!("t = {t}: ᾱ_t = {ab:.4}, √ᾱ_t = {:.3}, √(1−ᾱ_t) = {:.3}, SNR = {snr:.3e}", ab.sqrt(), (1.0 - ab).sqrt()))}</span>
                    </figcaption>
                </figure>
                <figure>
                    <svg data-testid="schedule-chart" viewBox="0 0 300 100" width="300" height="100">
                        <polyline fill="none" stroke="currentColor" stroke-width="1.5" points=linear_ab />
                        <polyline fill="none" stroke="currentColor" stroke-width="1.5" stroke-dasharray="4 3" points=cosine_ab />
                        <line x1=marker x2=marker y1="0" y2="100" stroke="#c33" />
                    </svg>
                    <figcaption>"ᾱ"<sub>"t"</sub>" from 1 to 0: linear β (solid), cosine (dashed)"</figcaption>
                </figure>
                <figure>
                    <svg data-testid="snr-chart" viewBox="0 0 300 100" width="300" height="100">
                        <polyline fill="none" stroke="currentColor" stroke-width="1.5" points=linear_snr />
                        <polyline fill="none" stroke="currentColor" stroke-width="1.5" stroke-dasharray="4 3" points=cosine_snr />
                        <line x1=marker x2=marker y1="0" y2="100" stroke="#c33" />
                    </svg>
                    <figcaption>"log"<sub>"10"</sub>" SNR(t) from 10"<sup>"4"</sup>" to 10"<sup>"−6"</sup></figcaption>
                </figure>
            </div>
        </section>
    }
}

/// 2. Training (Algorithm 1 with this run's target, weight and schedule): the controls, the
/// numbers, the loss and the previews.
#[component]
pub fn TrainingPanel(view: View) -> impl IntoView {
    // `with` reads the history in place: it grows by one loss a step, and copying it twice a
    // step (this and the chart) would cost the page more the longer the run.
    let mean_loss = move || {
        view.losses.with(|losses| {
            let recent = &losses[losses.len().saturating_sub(10)..];
            if recent.is_empty() { "–".to_string() } else { format!("{:.4}", recent.iter().sum::<f32>() / recent.len() as f32) }
        })
    };
    view! {
        <section class="panel">
            <h2>"2. Training: learning to denoise"</h2>
            <div data-testid="training-equation" data-objective=move || view.objective.with(Objective::key)
                inner_html=move || view.objective.with(training_equation)></div>
            <p class="note" data-testid="training-note">{move || view.objective.with(training_note)}</p>
            <div class="controls">
                <button data-testid="train" on:click=move |_| kernel_watch::train(view)
                    disabled=move || !view.ready.get() || view.running.get() || view.holder.get() != Holder::ThisTab>"Train"</button>
                <button data-testid="pause" on:click=move |_| send(Command::Pause, Vec::new())
                    disabled=move || !view.running.get()>"Pause"</button>
                <button data-testid="reset" on:click=move |_| forget_then_load(view, query())
                    disabled=move || !view.ready.get() || view.holder.get() != Holder::ThisTab>"Reset"</button>
                <span class="note" data-testid="saved-step">{move || view.saved_step.get().map(|step| format!("saved at step {step}")).unwrap_or_default()}</span>
            </div>
            <p class="note">"The run is saved in this browser every few hundred steps and on Pause; reloading the page continues it. Reset starts over."</p>
            <div class="row">
                <table class="stats">
                    <tr><th>"backend"</th><td data-testid="backend">{move || view.backend.get()}</td></tr>
                    <tr><th>"kernels"</th><td data-testid="kernels">{move || view.kernels.get()}</td></tr>
                    <tr title="The tuned build times the candidate kernels of each new operation and shape once per GPU, and this browser keeps the results: a second visit tunes nothing."
                        hidden=move || view.kernels_asked.get().0 != KernelPath::Tuned>
                        <th>"tuned this visit"</th>
                        <td data-testid="tuned" data-tuned=move || view.tuning.get().0>{move || {
                            let (tuned, compiled) = view.tuning.get();
                            format!("{tuned} operations tuned, {compiled} kernels compiled")
                        }}</td>
                    </tr>
                    <tr><th>"dataset"</th><td data-testid="dataset">{move || view.dataset.get().0}</td></tr>
                    <tr><th>"step"</th><td data-testid="step">{move || view.step.get()}</td></tr>
                    <tr><th>"images/s"</th><td data-testid="images-per-s">{move || format!("{:.1}", view.images_per_s.get())}</td></tr>
                    <tr><th>"loss (mean of last 10 steps)"</th><td data-testid="loss">{mean_loss}</td></tr>
                    <tr title="The same training loss on one fixed batch (the first images, fixed t and noise), on the weights being trained: measured when Train starts, with each preview and on Pause. It falls as the model learns, where the step's loss jitters.">
                        <th>"loss on a fixed batch"</th>
                        <td data-testid="fixed-loss" data-points=move || view.fixed_losses.with(|p| serde_json::to_string(p).unwrap_or_default())>
                            {move || view.fixed_losses.with(|p| fixed_loss_text(p))}
                        </td>
                    </tr>
                    <tr><th>"training images loaded"</th><td data-testid="images-loaded">{move || view.images_loaded.get()}</td></tr>
                </table>
                <figure>
                    <svg data-testid="loss-chart" data-recent=move || view.losses.with(|l| serde_json::to_string(&l[l.len().saturating_sub(10)..]).unwrap_or_default()) viewBox="0 0 300 114" width="300" height="114">
                        <polyline fill="none" stroke="currentColor" stroke-width="1.5" points=move || view.losses.with(|l| chart_points(l)) />
                        <line x1="0" x2="300" y1="100" y2="100" stroke="#ddd" />
                        <text data-testid="loss-axis" x="150" y="110" text-anchor="middle" font-size="10" fill="#555">
                            {move || view.objective.with(|o| format!("{} (log scale) over steps", o.loss_name()))}
                        </text>
                    </svg>
                    <figcaption>"loss per step, averaged, log scale"</figcaption>
                </figure>
                <figure>
                    <PictureCanvas picture=view.samples id="samples" view=view />
                    <figcaption>"samples from the EMA weights, from fixed noise (previews use DDIM)"</figcaption>
                </figure>
                <QualityView view=view />
            </div>
        </section>
    }
}

/// 4. Weights: export, import, the model card.
#[component]
pub fn WeightsPanel(view: View) -> impl IntoView {
    view! {
        <section class="panel">
            <h2>"4. Weights: take them away, bring them back"</h2>
            <p data-testid="model-card" class="card">{move || view.model_card.get()}</p>
            <div class="controls">
                <button data-testid="export" on:click=move |_| send(Command::Export, Vec::new())
                    disabled=move || !view.ready.get()>"Export weights (.safetensors)"</button>
                <button data-testid="export-diffusers" on:click=move |_| send(Command::ExportDiffusers, Vec::new())
                    disabled=move || !view.ready.get()>"Export for diffusers (.zip)"</button>
                <button data-testid="export-run" on:click=move |_| send(Command::ExportRun, Vec::new())
                    disabled=move || !view.ready.get()>"Export the whole run (.safetensors)"</button>
                <label class="file">"Import weights or a diffusers folder's files "
                    <input type="file" multiple accept=".safetensors,.json" data-testid="import"
                        on:change=on_files(view, |files| send_files(files, Command::Import)) disabled=move || !view.ready.get() />
                </label>
                <button data-testid="download-samples" on:click=move |_| send(Command::DownloadSamples, Vec::new())
                    disabled=move || !view.has_samples.get()>"Download samples (.npy)"</button>
            </div>
        </section>
    }
}
