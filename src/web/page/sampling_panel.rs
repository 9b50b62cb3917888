//! 3. Sampling: the sampler, its steps and η, the class and guidance, the trajectory, DDPM
//! against DDIM. What the inputs mean is `sampling_form`'s (pure, tested natively); these
//! components hold a signal per input and send the choice.

use leptos::prelude::*;

use crate::diffusion::{SamplerName, Spacing};
use crate::web::browser::query_param;
use crate::web::page::mathml::breakable;
use crate::web::page::panels::PictureCanvas;
use crate::web::page::sampling_form::{self as form, EVERY_CLASS, FROM_EXAMPLE, FROM_RUN, MAX_STEPS};
use crate::web::page::view::{View, send};
use crate::web::protocol::{Command, SamplerChoice};
use crate::web::settings::Settings;

/// Classifier-free guidance (Ho & Salimans 2022, eq. 6, with w there = w − 1 here, as diffusers
/// writes it): ε̃ = ε_θ(x_t, ∅) + w (ε_θ(x_t, c) − ε_θ(x_t, ∅)).
const GUIDANCE_EQUATION: &str = r#"<math display="block"><mtext>guidance:&#xa0;</mtext><msub><mover><mi>ε</mi><mo>~</mo></mover><mi>θ</mi></msub><mo>(</mo><msub><mi>x</mi><mi>t</mi></msub><mo>,</mo><mi>c</mi><mo>)</mo><mo>=</mo><msub><mi>ε</mi><mi>θ</mi></msub><mo>(</mo><msub><mi>x</mi><mi>t</mi></msub><mo>,</mo><mi>∅</mi><mo>)</mo><mo>+</mo><mi>w</mi><mo>(</mo><msub><mi>ε</mi><mi>θ</mi></msub><mo>(</mo><msub><mi>x</mi><mi>t</mi></msub><mo>,</mo><mi>c</mi><mo>)</mo><mo>−</mo><msub><mi>ε</mi><mi>θ</mi></msub><mo>(</mo><msub><mi>x</mi><mi>t</mi></msub><mo>,</mo><mi>∅</mi><mo>)</mo><mo>)</mo><mo>,</mo><mspace width="1em"/><mtext>labels dropped to ∅ with&#xa0;</mtext><mi>p</mi><mo>=</mo><mn>0.1</mn><mtext>&#xa0;in training</mtext></math>"#;

/// The panel's inputs, a signal each, as the controls set them.
#[derive(Clone, Copy)]
struct Inputs {
    sampler: RwSignal<SamplerName>,
    steps: RwSignal<usize>,
    eta: RwSignal<f64>,
    /// [`EVERY_CLASS`] or a class index.
    class: RwSignal<String>,
    guidance: RwSignal<f64>,
    /// "" (the model's own setting, its scheduler config) or a spacing's name.
    spacing: RwSignal<String>,
    /// "" (as the model says), "on" or "off".
    clip: RwSignal<String>,
    /// Sample the trained example (from the moment it loads) or this run's model.
    example: RwSignal<bool>,
    /// The address's recipe: what an input that holds no number means.
    recipe_steps: usize,
    recipe_guidance: f64,
}

impl Inputs {
    fn new(view: View) -> Self {
        let recipe = Settings::from_query(query_param).unwrap_or_default().spec;
        let example = RwSignal::new(false);
        Effect::new(move |_| example.set(view.example.with(Option::is_some)));
        Self {
            sampler: RwSignal::new(SamplerName::ALL[0]),
            steps: RwSignal::new(form::initial_steps(query_param("steps"), recipe.sample_steps)),
            eta: RwSignal::new(0.0),
            class: RwSignal::new(EVERY_CLASS.to_string()),
            guidance: RwSignal::new(recipe.guidance),
            spacing: RwSignal::new(String::new()),
            clip: RwSignal::new(String::new()),
            example,
            recipe_steps: recipe.sample_steps,
            recipe_guidance: recipe.guidance,
        }
    }

    /// What Sample asks of the worker.
    fn choice(self) -> SamplerChoice {
        SamplerChoice {
            sampler: self.sampler.get_untracked(),
            steps: self.steps.get_untracked(),
            eta: self.eta.get_untracked(),
            class: form::class(&self.class.get_untracked()),
            guidance: self.guidance.get_untracked(),
            spacing: form::spacing(&self.spacing.get_untracked()),
            clip_sample: form::clip_sample(&self.clip.get_untracked()),
            example: self.example.get_untracked(),
        }
    }
}

/// 3. Sampling: the sampler, its steps and η, the trajectory, DDPM against DDIM.
#[component]
pub fn SamplingPanel(view: View) -> impl IntoView {
    let inputs = Inputs::new(view);
    let equations: String = SamplerName::equations().into_iter().map(breakable).collect();
    view! {
        <section class="panel">
            <h2>"3. Sampling: from noise back to an image"</h2>
            <div inner_html=equations></div>
            <div hidden=move || view.classes.with(Vec::is_empty) inner_html=breakable(GUIDANCE_EQUATION)></div>
            <div class="controls">
                <SourceSelect view=view example=inputs.example />
                <SamplerControls inputs=inputs />
                <ClassControls view=view inputs=inputs />
                <button data-testid="sample" on:click=move |_| send(Command::Sample(inputs.choice()), Vec::new())
                    disabled=move || !view.ready.get()>"Sample"</button>
                <button data-testid="compare" on:click=move |_| send(Command::Compare { example: inputs.example.get_untracked() }, Vec::new())
                    disabled=move || !view.ready.get()>"DDPM-1000 vs DDIM-50"</button>
            </div>
            <SamplingFigures view=view />
        </section>
    }
}

/// Which model to sample, this run's or the trained example: shown once the example is loaded.
#[component]
fn SourceSelect(view: View, example: RwSignal<bool>) -> impl IntoView {
    view! {
        <select data-testid="sample-from" hidden=move || view.example.with(Option::is_none)
            prop:value=move || form::source_value(example.get())
            on:change=move |ev| example.set(form::from_example(&event_target_value(&ev)))>
            <option value=FROM_RUN>"your model"</option>
            <option value=FROM_EXAMPLE>{move || view.example.get().unwrap_or_default()}</option>
        </select>
    }
}

/// The sampler and what it takes: steps, their spacing, clipping x̂₀, η; each disabled where
/// the sampler does not use it.
#[component]
fn SamplerControls(inputs: Inputs) -> impl IntoView {
    let Inputs { sampler, steps, eta, spacing, clip, recipe_steps, .. } = inputs;
    let samplers = SamplerName::ALL.iter().map(|s| view! { <option value=s.name()>{s.label()}</option> }).collect::<Vec<_>>();
    let spacings = Spacing::ALL.iter().map(|&s| view! { <option value=s.name()>{form::spacing_label(s)}</option> }).collect::<Vec<_>>();
    view! {
        <select data-testid="sampler" prop:value=move || sampler.get().name()
            on:change=move |ev| if let Ok(name) = event_target_value(&ev).parse() { sampler.set(name) }>
            {samplers}
        </select>
        <label>"steps "
            <input type="number" min="1" max=MAX_STEPS data-testid="sample-steps" prop:value=move || steps.get()
                disabled=move || !sampler.get().takes_steps()
                on:change=move |ev| steps.set(form::steps_input(&event_target_value(&ev), recipe_steps)) />
        </label>
        <select data-testid="spacing" title="Which timesteps a few-step sampler visits (diffusers' timestep_spacing)"
            disabled=move || !sampler.get().takes_steps()
            on:change=move |ev| spacing.set(event_target_value(&ev))>
            <option value="">"the model's spacing"</option>
            {spacings}
        </select>
        <select data-testid="clip" title="Clip x̂₀ to [−1, 1] at each DDPM and DDIM step (diffusers' clip_sample)"
            disabled=move || !form::clips(sampler.get())
            on:change=move |ev| clip.set(event_target_value(&ev))>
            <option value="">"clip x̂₀ as the model says"</option>
            <option value="on">"clip x̂₀ to [−1, 1]"</option>
            <option value="off">"do not clip x̂₀"</option>
        </select>
        <label>"η = "{move || form::one_decimal(eta.get())}" "
            <input type="range" min="0" max="1" step="0.1" data-testid="eta" prop:value=move || eta.get()
                disabled=move || !sampler.get().takes_eta()
                on:input=move |ev| eta.set(form::slider_input(&event_target_value(&ev), 0.0)) />
        </label>
    }
}

/// For a class-conditional model (hidden otherwise): the class, and the guidance scale w.
#[component]
fn ClassControls(view: View, inputs: Inputs) -> impl IntoView {
    let Inputs { class, guidance, recipe_guidance, .. } = inputs;
    let options = move || {
        let options = view.classes.with(|names| form::class_options(names));
        options.into_iter().map(|(value, name)| view! { <option value=value>{name}</option> }).collect::<Vec<_>>()
    };
    view! {
        <span class="controls" hidden=move || view.classes.with(Vec::is_empty)>
            <label>"class "
                <select data-testid="class" prop:value=move || class.get() on:change=move |ev| class.set(event_target_value(&ev))>
                    <option value=EVERY_CLASS>"each class in turn"</option>
                    {options}
                </select>
            </label>
            <label>"guidance w = "{move || form::one_decimal(guidance.get())}" "
                <input type="range" min="0" max="8" step="0.5" data-testid="guidance" prop:value=move || guidance.get()
                    on:input=move |ev| guidance.set(form::slider_input(&event_target_value(&ev), recipe_guidance)) />
            </label>
        </span>
    }
}

/// What the worker sent back, each figure once there is one: the samples, the first image's
/// trajectory, and DDPM beside DDIM.
#[component]
fn SamplingFigures(view: View) -> impl IntoView {
    view! {
        <div class="row">
            <figure hidden=move || view.sampled.with(Option::is_none)>
                <PictureCanvas picture=view.sampled id="sampled" view=view />
                <figcaption>"the samples, from the fixed noise of the seed"</figcaption>
            </figure>
            <figure hidden=move || view.trajectory.with(Option::is_none)>
                <PictureCanvas picture=view.trajectory id="trajectory" view=view />
                <figcaption>"the first image along the way: x"<sub>"t"</sub>" (top) and the network's guess x̂"<sub>"0"</sub>" (bottom), left to right"</figcaption>
            </figure>
            <figure hidden=move || view.compare.with(Option::is_none)>
                <PictureCanvas picture=view.compare id="compare-grid" view=view />
                <figcaption>"DDPM with all T steps (top) and DDIM with 50 (bottom), from the same noise"</figcaption>
            </figure>
        </div>
    }
}
