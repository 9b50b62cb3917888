//! The 2-D playground panel: a point MLP learns a 2-D cloud (or points the user draws) in
//! seconds, with the score it learns drawn as arrows and the reverse paths of DDPM and DDIM.
//!
//! The network has 16k parameters: on the page's CPU backend a step takes a few milliseconds,
//! less than a WebGPU round trip, so it runs here, in slices of about 10 ms between the
//! browser's frames (never blocking the page for long), not in the GPU worker. Everything it
//! computes comes from the core's [`Playground`]; this file draws.

use burn::tensor::{Device, Tensor};
use leptos::html::Canvas as CanvasElement;
use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::JsCast;
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement};

use crate::web::browser::yield_now;
use crate::web::page::mathml::breakable;
use crate::data::{PointSet, PointShape, tensor_points};
use crate::diffusion::{SamplerKind, SamplerName, Schedule};
use crate::model::PointDenoiserConfig;
use crate::model::state_dict::read_values;
use crate::playground::Playground;
use crate::train::Trainer;

/// s_θ(x_t, t) = −ε_θ(x_t, t) / √(1 − ᾱ_t) ≈ ∇ log p_t(x_t) (Song et al. 2021; Vincent 2011).
const SCORE_EQUATION: &str = r#"<math display="block"><msub><mi>s</mi><mi>θ</mi></msub><mo>(</mo><msub><mi>x</mi><mi>t</mi></msub><mo>,</mo><mi>t</mi><mo>)</mo><mo>=</mo><mo>−</mo><mfrac><mrow><msub><mi>ε</mi><mi>θ</mi></msub><mo>(</mo><msub><mi>x</mi><mi>t</mi></msub><mo>,</mo><mi>t</mi><mo>)</mo></mrow><msqrt><mn>1</mn><mo>−</mo><msub><mi>ᾱ</mi><mi>t</mi></msub></msqrt></mfrac><mo>≈</mo><msub><mo>∇</mo><msub><mi>x</mi><mi>t</mi></msub></msub><mi>log</mi><msub><mi>p</mi><mi>t</mi></msub><mo>(</mo><msub><mi>x</mi><mi>t</mi></msub><mo>)</mo></math>"#;

/// The probability-flow ODE (Song et al. 2021, eq. 13), which DDIM with η = 0 integrates.
const ODE_EQUATION: &str = r#"<math display="block"><mi>d</mi><mi>x</mi><mo>=</mo><mrow><mo>[</mo><mi>f</mi><mo>(</mo><mi>x</mi><mo>,</mo><mi>t</mi><mo>)</mo><mo>−</mo><mfrac><mn>1</mn><mn>2</mn></mfrac><msup><mi>g</mi><mn>2</mn></msup><mo>(</mo><mi>t</mi><mo>)</mo><msub><mo>∇</mo><mi>x</mi></msub><mi>log</mi><msub><mi>p</mi><mi>t</mi></msub><mo>(</mo><mi>x</mi><mo>)</mo><mo>]</mo></mrow><mi>d</mi><mi>t</mi><mspace width="1em"/><mtext>(DDIM, η = 0; DDPM adds fresh noise at every step)</mtext></math>"#;

const SIDE: u32 = 320;
const DRAW: &str = "draw";

/// A training run of the playground, on the page's CPU.
struct Run {
    set: PointSet,
    trainer: Trainer<PointDenoiserConfig>,
}

fn device() -> Device {
    Device::flex()
}

fn to_pixel(p: [f32; 2]) -> (f64, f64) {
    let e = Playground::EXTENT;
    (f64::from((p[0] + e) / (2.0 * e)) * f64::from(SIDE), f64::from((e - p[1]) / (2.0 * e)) * f64::from(SIDE))
}

fn context(canvas: &HtmlCanvasElement) -> Option<CanvasRenderingContext2d> {
    canvas.set_width(SIDE);
    canvas.set_height(SIDE);
    let context: CanvasRenderingContext2d = canvas.get_context("2d").ok()??.unchecked_into();
    context.set_fill_style_str("#fff");
    context.fill_rect(0.0, 0.0, f64::from(SIDE), f64::from(SIDE));
    Some(context)
}

fn dots(context: &CanvasRenderingContext2d, points: &[[f32; 2]], color: &str, radius: f64) {
    context.set_fill_style_str(color);
    for &p in points {
        let (x, y) = to_pixel(p);
        context.fill_rect(x - radius, y - radius, 2.0 * radius, 2.0 * radius);
    }
}

fn paths(context: &CanvasRenderingContext2d, paths: &[Vec<[f32; 2]>], color: &str) {
    context.set_stroke_style_str(color);
    context.set_line_width(1.0);
    for path in paths {
        context.begin_path();
        for (i, &p) in path.iter().enumerate() {
            let (x, y) = to_pixel(p);
            if i == 0 { context.move_to(x, y) } else { context.line_to(x, y) }
        }
        context.stroke();
    }
    let ends: Vec<[f32; 2]> = paths.iter().filter_map(|p| p.last().copied()).collect();
    dots(context, &ends, color, 2.5);
}

/// Arrows of the score at the grid, scaled so that the longest is 90% of a cell.
fn arrows(context: &CanvasRenderingContext2d, field: &[[f32; 2]]) {
    let grid = Playground::grid(Playground::GRID);
    let longest = field.iter().map(|s| s[0].hypot(s[1])).fold(0.0f32, f32::max);
    if longest <= 0.0 || !longest.is_finite() {
        return;
    }
    let cell = 2.0 * Playground::EXTENT / (Playground::GRID - 1) as f32;
    context.set_stroke_style_str("#c33");
    context.begin_path();
    for (&at, &s) in grid.iter().zip(field) {
        let k = 0.9 * cell / longest;
        let tip = [at[0] + k * s[0], at[1] + k * s[1]];
        let ((x0, y0), (x1, y1)) = (to_pixel(at), to_pixel(tip));
        context.move_to(x0, y0);
        context.line_to(x1, y1);
        let (dx, dy) = (x1 - x0, y1 - y0);
        let len = dx.hypot(dy).max(1e-9);
        let (ux, uy) = (dx / len, dy / len);
        let head = len.min(4.0);
        context.move_to(x1, y1);
        context.line_to(x1 - head * (ux - 0.5 * uy), y1 - head * (uy + 0.5 * ux));
        context.move_to(x1, y1);
        context.line_to(x1 - head * (ux + 0.5 * uy), y1 - head * (uy - 0.5 * ux));
    }
    context.stroke();
}

async fn points_of(tensor: Tensor<4>) -> Result<Vec<[f32; 2]>, String> {
    read_values(tensor).await.map(|v| tensor_points(&v)).map_err(|e| e.to_string())
}

/// A sampling run's path: x_T, then the sample after every step.
async fn trajectories(kind: SamplerKind, model: &crate::model::PointDenoiser, schedule: &Schedule, count: usize) -> Result<Vec<Vec<[f32; 2]>>, String> {
    let mut run = Playground::sample_run(kind, schedule, count, 1, &device());
    let mut paths: Vec<Vec<[f32; 2]>> = points_of(run.sample.clone()).await?.into_iter().map(|p| vec![p]).collect();
    let mut since = js_sys::Date::now();
    while run.step(model).is_some() {
        for (path, p) in paths.iter_mut().zip(points_of(run.sample.clone()).await?) {
            path.push(p);
        }
        if js_sys::Date::now() - since > 10.0 {
            yield_now(0).await;
            since = js_sys::Date::now();
        }
    }
    Ok(paths)
}

/// The fifth panel.
#[component]
pub fn PlaygroundPanel() -> impl IntoView {
    let run = StoredValue::new_local(None::<Run>);
    let schedule = StoredValue::new_local(Schedule::new(Playground::schedule()));
    let shape = RwSignal::new(PointShape::EightGaussians.name().to_string());
    let drawn = RwSignal::new(Vec::<[f32; 2]>::new());
    let (running, busy, pen) = (RwSignal::new(false), RwSignal::new(false), RwSignal::new(false));
    let (step, loss, rate) = (RwSignal::new(0usize), RwSignal::new(None::<f32>), RwSignal::new(0.0f64));
    let t = RwSignal::new(0usize);
    let ddim_steps = RwSignal::new(Playground::DEFAULT_DDIM_STEPS);
    let (cloud, field) = (RwSignal::new(Vec::<[f32; 2]>::new()), RwSignal::new(Vec::<[f32; 2]>::new()));
    let (ddpm_paths, ddim_paths) = (RwSignal::new(Vec::<Vec<[f32; 2]>>::new()), RwSignal::new(Vec::<Vec<[f32; 2]>>::new()));
    let (samples, quality, error) = (RwSignal::new(Vec::<[f32; 2]>::new()), RwSignal::new(String::new()), RwSignal::new(String::new()));
    let data_canvas = NodeRef::<CanvasElement>::new();
    let paths_canvas = NodeRef::<CanvasElement>::new();
    let samples_canvas = NodeRef::<CanvasElement>::new();

    // The data of the current choice: a generated shape, or the drawn points.
    let data = move || -> Result<PointSet, String> {
        match shape.get_untracked().as_str() {
            DRAW => PointSet::drawn(drawn.get_untracked()).map_err(|e| e.to_string()),
            name => {
                let shape: PointShape = name.parse().map_err(|e: crate::names::UnknownName| e.to_string())?;
                PointSet::generate(shape, Playground::POINTS, 0).map_err(|e| e.to_string())
            }
        }
    };
    // The views that follow t: x_t ~ q(x_t | x_0), and the score at t where there is a model.
    let refresh = move || {
        spawn_local(async move {
            let at = t.get_untracked();
            let (noised, score) = match data() {
                Err(_) => (None, None),
                Ok(set) => schedule.with_value(|schedule| {
                    let noised = Playground::noised(&set, schedule, at, Playground::SAMPLES, 0, &device());
                    let grid = Playground::grid(Playground::GRID);
                    let score = run.with_value(|r| r.as_ref().map(|r| Playground::score(&r.trainer.ema, schedule, &grid, at, &device())));
                    (Some(noised), score)
                }),
            };
            match noised {
                Some(n) => cloud.set(points_of(n).await.unwrap_or_default()),
                None => cloud.set(drawn.get_untracked()),
            }
            field.set(match score {
                Some(s) => points_of(s).await.unwrap_or_default(),
                None => Vec::new(),
            });
        });
    };
    let reset = move || {
        running.set(false);
        run.set_value(None);
        (step.set(0), loss.set(None), field.set(Vec::new()), samples.set(Vec::new()), quality.set(String::new()));
        (ddpm_paths.set(Vec::new()), ddim_paths.set(Vec::new()), error.set(String::new()));
        refresh();
    };
    refresh();

    let train = move || {
        if running.get_untracked() {
            running.set(false);
            return;
        }
        if run.with_value(Option::is_none) {
            match data() {
                Ok(set) => run.set_value(Some(Run { set, trainer: Playground::trainer(0, &device()) })),
                Err(e) => return error.set(e),
            }
        }
        error.set(String::new());
        running.set(true);
        spawn_local(async move {
            let (mut last_view, start, start_step) = (js_sys::Date::now(), js_sys::Date::now(), step.get_untracked());
            while running.get_untracked() {
                let slice = js_sys::Date::now();
                let mut last = None;
                run.update_value(|r| {
                    let Some(r) = r else { return };
                    while js_sys::Date::now() - slice < 10.0 {
                        let x0 = r.trainer.next_points(&r.set);
                        last = Some(r.trainer.step(x0));
                    }
                    step.set(r.trainer.step);
                });
                let Some(last) = last else { break };
                if let Ok(v) = read_values(last).await {
                    loss.set(v.first().copied());
                }
                let now = js_sys::Date::now();
                rate.set((step.get_untracked() - start_step) as f64 / ((now - start) / 1000.0).max(1e-3));
                if now - last_view > 400.0 {
                    refresh();
                    last_view = now;
                }
                yield_now(0).await;
            }
            refresh();
        });
    };

    let sample = move || {
        let Some(model) = run.with_value(|r| r.as_ref().map(|r| r.trainer.ema.clone())) else {
            return error.set("Train the model first (the Train button), then sample it.".into());
        };
        busy.set(true);
        spawn_local(async move {
            let schedule = schedule.get_value();
            let ddim = SamplerKind::ddim(ddim_steps.get_untracked());
            let ddpm = SamplerKind::new(SamplerName::Ddpm, 0, 0.0, None, &Playground::schedule());
            let result = async {
                ddim_paths.set(trajectories(ddim, &model, &schedule, Playground::TRAJECTORIES).await?);
                ddpm_paths.set(trajectories(ddpm, &model, &schedule, Playground::TRAJECTORIES).await?);
                let mut cloud = Playground::sample_run(ddim, &schedule, Playground::SAMPLES, 2, &device());
                let mut since = js_sys::Date::now();
                while cloud.step(&model).is_some() {
                    if js_sys::Date::now() - since > 10.0 {
                        yield_now(0).await;
                        since = js_sys::Date::now();
                    }
                }
                let start = points_of(Playground::sample_run(ddim, &schedule, Playground::SAMPLES, 2, &device()).sample).await?;
                let points = points_of(cloud.sample).await?;
                let set = data()?;
                let d = Playground::nearest_distance(&points, &set.points);
                let noise = Playground::nearest_distance(&start, &set.points);
                // The floor: as many fresh points of a generated shape (drawn points have none).
                let floor = match shape.get_untracked().parse::<PointShape>() {
                    Ok(s) => PointSet::generate(s, Playground::SAMPLES, 1)
                        .map(|fresh| format!(" (fresh points of the shape: {:.3})", Playground::nearest_distance(&fresh.points, &set.points)))
                        .unwrap_or_default(),
                    Err(_) => String::new(),
                };
                quality.set(format!(
                    "{} samples by {}: mean distance to the nearest data point {d:.3}{floor}; their starting noise x_T: {noise:.3}",
                    points.len(),
                    ddim.describe()
                ));
                samples.set(points);
                Ok::<(), String>(())
            }
            .await;
            if let Err(e) = result {
                error.set(e);
            }
            busy.set(false);
        });
    };

    // Drawing: press and drag on the first canvas while "draw your own" is chosen.
    let pen_at = move |ev: &leptos::ev::PointerEvent| {
        let Some(canvas) = data_canvas.get_untracked() else { return };
        let scale = f64::from(SIDE) / f64::from(canvas.client_width().max(1));
        let (x, y) = (f64::from(ev.offset_x()) * scale, f64::from(ev.offset_y()) * scale);
        let e = f64::from(Playground::EXTENT);
        let p = [(x / f64::from(SIDE) * 2.0 * e - e) as f32, (e - y / f64::from(SIDE) * 2.0 * e) as f32];
        drawn.update(|points| {
            let far = points.last().is_none_or(|q: &[f32; 2]| (q[0] - p[0]).hypot(q[1] - p[1]) > Playground::PEN_SPACING);
            if far && points.len() < Playground::MAX_DRAWN {
                points.push(p);
            }
        });
        cloud.set(drawn.get_untracked());
    };

    Effect::new(move |_| {
        let (cloud, field) = (cloud.get(), field.get());
        if let Some(context) = data_canvas.get().and_then(|c| context(&c)) {
            dots(&context, &cloud, "#246", 1.5);
            arrows(&context, &field);
        }
    });
    Effect::new(move |_| {
        let (ddpm, ddim) = (ddpm_paths.get(), ddim_paths.get());
        if let Some(context) = paths_canvas.get().and_then(|c| context(&c)) {
            paths(&context, &ddpm, "rgba(220, 120, 0, 0.2)");
            paths(&context, &ddim, "rgba(20, 80, 200, 0.9)");
        }
    });
    Effect::new(move |_| {
        let samples = samples.get();
        if let Some(context) = samples_canvas.get().and_then(|c| context(&c)) {
            let data = run.with_value(|r| r.as_ref().map(|r| r.set.points.clone())).unwrap_or_default();
            dots(&context, &data, "#bbb", 1.0);
            dots(&context, &samples, "#1450c8", 1.5);
        }
    });

    let last_t = Playground::schedule().num_train_timesteps - 1;
    let shapes = PointShape::ALL.iter().map(|s| s.name()).chain([DRAW]).collect::<Vec<_>>();
    view! {
        <section class="panel">
            <h2>"5. Playground: diffusion in two dimensions"</h2>
            <p class="note">"A 16k-parameter network learns a cloud of points in seconds, by the same Algorithm 1 and samplers as the U-Net. Its output, rescaled, is the score: arrows that point to where the data is more likely at time t. DDIM with η = 0 follows them along the probability-flow ODE; DDPM adds fresh noise at every step."</p>
            <div inner_html=breakable(SCORE_EQUATION)></div>
            <div inner_html=breakable(ODE_EQUATION)></div>
            <div class="controls">
                <label>"data "
                    <select data-testid="pg-shape" on:change=move |ev| { shape.set(event_target_value(&ev)); t.set(0); reset(); }>
                        {shapes.into_iter().map(|s| view! { <option value=s selected=s == PointShape::EightGaussians.name()>{if s == DRAW { "draw your own" } else { s }}</option> }).collect_view()}
                    </select>
                </label>
                <button data-testid="pg-clear" hidden=move || shape.get() != DRAW on:click=move |_| { drawn.set(Vec::new()); reset(); }>"Clear"</button>
                <button data-testid="pg-train" on:click=move |_| train()>{move || if running.get() { "Pause" } else { "Train" }}</button>
                <button data-testid="pg-reset" on:click=move |_| reset()>"Start over"</button>
                <span data-testid="pg-step">{move || format!("step {}", step.get())}</span>
                <span data-testid="pg-loss">{move || loss.get().map_or(String::new(), |l| format!("loss {l:.4}"))}</span>
                <span class="note">{move || if running.get() { format!("{:.0} steps/s on the CPU", rate.get()) } else { String::new() }}</span>
            </div>
            <div class="controls">
                <label>"t = "{move || t.get()}" "
                    <input type="range" min="0" max=last_t data-testid="pg-t" prop:value=move || t.get()
                        on:input=move |ev| { t.set(event_target_value(&ev).parse().unwrap_or(0)); refresh(); } />
                </label>
                <label>"DDIM steps "
                    <select data-testid="pg-ddim-steps" on:change=move |ev| ddim_steps.set(event_target_value(&ev).parse().unwrap_or(Playground::DEFAULT_DDIM_STEPS))>
                        {Playground::DDIM_STEPS.into_iter().map(|n| view! { <option value=n selected=n == Playground::DEFAULT_DDIM_STEPS>{n}</option> }).collect_view()}
                    </select>
                </label>
                <button data-testid="pg-sample" on:click=move |_| sample() disabled=move || busy.get()>"Sample"</button>
            </div>
            <p class="error" data-testid="pg-error" hidden=move || error.get().is_empty()>{move || error.get()}</p>
            <div class="row playground">
                <figure>
                    <canvas node_ref=data_canvas data-testid="pg-data" class="points"
                        on:pointerdown=move |ev| if shape.get_untracked() == DRAW { pen.set(true); t.set(0); pen_at(&ev) }
                        on:pointermove=move |ev| if pen.get_untracked() { pen_at(&ev) }
                        on:pointerup=move |_| { if pen.get_untracked() { pen.set(false); reset(); } }
                        on:pointerleave=move |_| { if pen.get_untracked() { pen.set(false); reset(); } }></canvas>
                    <figcaption>"x"<sub>"t"</sub>" ~ q(x"<sub>"t"</sub>" | x"<sub>"0"</sub>") and the learned score s"<sub>"θ"</sub>"(x, t) (arrows)"
                        {move || if shape.get() == DRAW { " · draw here" } else { "" }}</figcaption>
                </figure>
                <figure>
                    <canvas node_ref=paths_canvas data-testid="pg-paths" class="points"></canvas>
                    <figcaption>"From the same x"<sub>"T"</sub>": DDIM η = 0 (blue, the ODE), DDPM-1000 (orange, stochastic)"</figcaption>
                </figure>
                <figure>
                    <canvas node_ref=samples_canvas data-testid="pg-samples" class="points"></canvas>
                    <figcaption>"Samples (blue) over the data (grey)"</figcaption>
                </figure>
            </div>
            <p class="note" data-testid="pg-quality">{move || quality.get()}</p>
        </section>
    }
}
