//! The training panel's sample-quality chart: FID of the EMA's samples over the steps, the floor
//! as a dashed line, and the last precision and recall. The worker measures
//! (`session/quality.rs`); this draws.

use leptos::prelude::*;

use crate::web::page::charts::{polyline_points, quality_points};
use crate::web::protocol::Command;
use crate::web::page::view::{View, send};

#[component]
pub fn QualityView(view: View) -> impl IntoView {
    let chart = move || {
        view.quality.with(|points| {
            let floor = points.last().map_or(1.0, |p| p.floor.fid);
            quality_points(&points.iter().map(|p| (p.step, p.model.fid)).collect::<Vec<_>>(), floor)
        })
    };
    let numbers = move || {
        view.quality.with(|points| match points.last() {
            None => String::new(),
            Some(p) => format!(
                "step {}: FID {:.2}, precision {:.3}, recall {:.3} · floor ({} training images): FID {:.2}, precision {:.3}, recall {:.3} · {} samples, {}",
                p.step, p.model.fid, p.model.precision, p.model.recall, p.count, p.floor.fid, p.floor.precision, p.floor.recall, p.count, p.sampler
            ),
        })
    };
    view! {
        <figure>
            <svg data-testid="quality-chart" viewBox="0 0 300 100" width="300" height="100">
                <polyline fill="none" stroke="currentColor" stroke-width="1.5" points=move || polyline_points(&chart().0) />
                {move || chart().0.into_iter().map(|(x, y)| view! { <circle cx=format!("{x:.1}") cy=format!("{y:.1}") r="3" fill="currentColor" /> }).collect_view()}
                <line x1="0" x2="300" y1=move || format!("{:.1}", chart().1) y2=move || format!("{:.1}", chart().1)
                    stroke="#c33" stroke-dasharray="4 3" hidden=move || view.quality.with(Vec::is_empty) />
            </svg>
            <figcaption>"sample quality: FID of the EMA's samples (LeNet-5 features, log scale, lower is better); dashed: the floor, training images against the same test images"</figcaption>
            <p class="note" data-testid="quality" data-quality=move || view.quality.with(|q| q.last().map(|p| serde_json::to_string(p).unwrap_or_default()))>{numbers}</p>
            <p class="note" data-testid="quality-note">{move || view.quality_note.get()}</p>
            <button data-testid="measure-quality" on:click=move |_| send(Command::Quality, Vec::new())
                disabled=move || !view.ready.get()>"Measure sample quality"</button>
        </figure>
    }
}
