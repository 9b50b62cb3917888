//! The 2-D playground panel: a point MLP learns a 2-D cloud (or points the user draws) in
//! seconds, with the score it learns drawn as arrows and the reverse paths of DDPM and DDIM.
//! These components lay the panel out; its state and its work on the page's CPU are
//! `playground_work`'s, what its inputs and presses mean `playground_logic`'s, and its canvases
//! `playground_canvas`'s.

use leptos::ev::PointerEvent;
use leptos::html::Canvas as CanvasElement;
use leptos::prelude::*;

use crate::playground::Playground;
use crate::web::page::mathml::breakable;
use crate::web::page::plane::from_offset;
use crate::web::page::playground_canvas::{draw_data, draw_paths, draw_samples};
use crate::web::page::playground_logic::{self as logic, DRAW};
use crate::web::page::playground_work::PlaygroundState;

/// s_θ(x_t, t) = −ε_θ(x_t, t) / √(1 − ᾱ_t) ≈ ∇ log p_t(x_t) (Song et al. 2021; Vincent 2011).
const SCORE_EQUATION: &str = r#"<math display="block"><msub><mi>s</mi><mi>θ</mi></msub><mo>(</mo><msub><mi>x</mi><mi>t</mi></msub><mo>,</mo><mi>t</mi><mo>)</mo><mo>=</mo><mo>−</mo><mfrac><mrow><msub><mi>ε</mi><mi>θ</mi></msub><mo>(</mo><msub><mi>x</mi><mi>t</mi></msub><mo>,</mo><mi>t</mi><mo>)</mo></mrow><msqrt><mn>1</mn><mo>−</mo><msub><mi>ᾱ</mi><mi>t</mi></msub></msqrt></mfrac><mo>≈</mo><msub><mo>∇</mo><msub><mi>x</mi><mi>t</mi></msub></msub><mi>log</mi><msub><mi>p</mi><mi>t</mi></msub><mo>(</mo><msub><mi>x</mi><mi>t</mi></msub><mo>)</mo></math>"#;

/// The probability-flow ODE (Song et al. 2021, eq. 13), which DDIM with η = 0 integrates.
const ODE_EQUATION: &str = r#"<math display="block"><mi>d</mi><mi>x</mi><mo>=</mo><mrow><mo>[</mo><mi>f</mi><mo>(</mo><mi>x</mi><mo>,</mo><mi>t</mi><mo>)</mo><mo>−</mo><mfrac><mn>1</mn><mn>2</mn></mfrac><msup><mi>g</mi><mn>2</mn></msup><mo>(</mo><mi>t</mi><mo>)</mo><msub><mo>∇</mo><mi>x</mi></msub><mi>log</mi><msub><mi>p</mi><mi>t</mi></msub><mo>(</mo><mi>x</mi><mo>)</mo><mo>]</mo></mrow><mi>d</mi><mi>t</mi><mspace width="1em"/><mtext>(DDIM, η = 0; DDPM adds fresh noise at every step)</mtext></math>"#;

/// The fifth panel.
#[component]
pub fn PlaygroundPanel() -> impl IntoView {
    let pg = PlaygroundState::new();
    pg.refresh();
    view! {
        <section class="panel">
            <h2>"5. Playground: diffusion in two dimensions"</h2>
            <p class="note">"A 16k-parameter network learns a cloud of points in seconds, by the same Algorithm 1 and samplers as the U-Net. Its output, rescaled, is the score: arrows that point to where the data is more likely at time t. DDIM with η = 0 follows them along the probability-flow ODE; DDPM adds fresh noise at every step."</p>
            <div inner_html=breakable(SCORE_EQUATION)></div>
            <div inner_html=breakable(ODE_EQUATION)></div>
            <TrainControls pg=pg />
            <SampleControls pg=pg />
            <p class="error" data-testid="pg-error" hidden=move || pg.error.get().is_empty()>{move || pg.error.get()}</p>
            <div class="row playground">
                <DataFigure pg=pg />
                <SampleFigures pg=pg />
            </div>
            <p class="note" data-testid="pg-quality">{move || pg.quality.get()}</p>
        </section>
    }
}

/// The data, and training on it: Train (Pause while it trains), Start over, the step, the
/// loss and the speed.
#[component]
fn TrainControls(pg: PlaygroundState) -> impl IntoView {
    let choices = logic::data_choices().into_iter();
    let options = choices.map(|s| view! { <option value=s selected=s == logic::first_choice()>{logic::choice_label(s)}</option> }).collect_view();
    view! {
        <div class="controls">
            <label>"data "
                <select data-testid="pg-shape" on:change=move |ev| pg.choose(event_target_value(&ev))>
                    {options}
                </select>
            </label>
            <button data-testid="pg-clear" hidden=move || pg.shape.get() != DRAW on:click=move |_| pg.clear()>"Clear"</button>
            <button data-testid="pg-train" on:click=move |_| pg.train()>{move || logic::train_label(pg.running.get())}</button>
            <button data-testid="pg-reset" on:click=move |_| pg.reset()>"Start over"</button>
            <span data-testid="pg-step">{move || logic::step_text(pg.step.get())}</span>
            <span data-testid="pg-loss">{move || logic::loss_text(pg.loss.get())}</span>
            <span class="note">{move || logic::rate_text(pg.running.get(), pg.rate.get())}</span>
        </div>
    }
}

/// The time t of the first view, DDIM's steps, and Sample.
#[component]
fn SampleControls(pg: PlaygroundState) -> impl IntoView {
    let last_t = Playground::schedule().num_train_timesteps - 1;
    let steps = Playground::DDIM_STEPS.into_iter();
    let steps = steps.map(|n| view! { <option value=n selected=n == Playground::DEFAULT_DDIM_STEPS>{n}</option> }).collect_view();
    view! {
        <div class="controls">
            <label>"t = "{move || pg.t.get()}" "
                <input type="range" min="0" max=last_t data-testid="pg-t" prop:value=move || pg.t.get()
                    on:input=move |ev| pg.set_t(&event_target_value(&ev)) />
            </label>
            <label>"DDIM steps "
                <select data-testid="pg-ddim-steps" on:change=move |ev| pg.ddim_steps.set(logic::ddim_steps_input(&event_target_value(&ev)))>
                    {steps}
                </select>
            </label>
            <button data-testid="pg-sample" on:click=move |_| pg.sample() disabled=move || pg.busy.get()>"Sample"</button>
        </div>
    }
}

/// The first canvas: x_t ~ q(x_t | x_0) with the learned score; while "draw your own" is
/// chosen, press and drag on it to draw.
#[component]
fn DataFigure(pg: PlaygroundState) -> impl IntoView {
    let canvas = NodeRef::<CanvasElement>::new();
    Effect::new(move |_| {
        let (cloud, field) = (pg.cloud.get(), pg.field.get());
        if let Some(canvas) = canvas.get() {
            draw_data(&canvas, &cloud, &field);
        }
    });
    let pen_at = move |ev: &PointerEvent| {
        if let Some(canvas) = canvas.get_untracked() {
            pg.pen_at(from_offset((ev.offset_x(), ev.offset_y()), canvas.client_width()));
        }
    };
    view! {
        <figure>
            <canvas node_ref=canvas data-testid="pg-data" class="points"
                on:pointerdown=move |ev| if pg.pen_down() { pen_at(&ev) }
                on:pointermove=move |ev| if pg.drawing() { pen_at(&ev) }
                on:pointerup=move |_| pg.pen_up()
                on:pointerleave=move |_| pg.pen_up()></canvas>
            <figcaption>"x"<sub>"t"</sub>" ~ q(x"<sub>"t"</sub>" | x"<sub>"0"</sub>") and the learned score s"<sub>"θ"</sub>"(x, t) (arrows)"
                {move || logic::draw_hint(&pg.shape.get())}</figcaption>
        </figure>
    }
}

/// The reverse paths of both samplers from the same x_T, and the samples over the data.
#[component]
fn SampleFigures(pg: PlaygroundState) -> impl IntoView {
    let (paths, samples) = (NodeRef::<CanvasElement>::new(), NodeRef::<CanvasElement>::new());
    Effect::new(move |_| {
        let (ddpm, ddim) = (pg.ddpm_paths.get(), pg.ddim_paths.get());
        if let Some(canvas) = paths.get() {
            draw_paths(&canvas, &ddpm, &ddim);
        }
    });
    Effect::new(move |_| {
        let points = pg.samples.get();
        if let Some(canvas) = samples.get() {
            draw_samples(&canvas, &pg.data_points(), &points);
        }
    });
    view! {
        <figure>
            <canvas node_ref=paths data-testid="pg-paths" class="points"></canvas>
            <figcaption>"From the same x"<sub>"T"</sub>": DDIM η = 0 (blue, the ODE), DDPM-1000 (orange, stochastic)"</figcaption>
        </figure>
        <figure>
            <canvas node_ref=samples data-testid="pg-samples" class="points"></canvas>
            <figcaption>"Samples (blue) over the data (grey)"</figcaption>
        </figure>
    }
}
