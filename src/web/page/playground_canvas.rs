//! The playground's three canvases, drawn from what the panel holds: the noised data with the
//! score's arrows, the reverse paths of both samplers, the samples over the data. Where things
//! land is `plane`'s (pure, tested natively); this file strokes and fills.

use wasm_bindgen::JsCast;
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement};

use crate::web::page::plane::{SIDE, arrows, ends, to_pixel};

/// The canvas's 2-D context, the canvas cleared to white at [`SIDE`] × [`SIDE`].
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
    dots(context, &ends(paths), color, 2.5);
}

/// The score's arrows in red, if there are any.
fn score(context: &CanvasRenderingContext2d, field: &[[f32; 2]]) {
    let arrows = arrows(field);
    if arrows.is_empty() {
        return;
    }
    context.set_stroke_style_str("#c33");
    context.begin_path();
    for arrow in arrows {
        let [tail, tip, left, right] = [arrow.tail, arrow.tip, arrow.left, arrow.right];
        context.move_to(tail.0, tail.1);
        context.line_to(tip.0, tip.1);
        context.move_to(tip.0, tip.1);
        context.line_to(left.0, left.1);
        context.move_to(tip.0, tip.1);
        context.line_to(right.0, right.1);
    }
    context.stroke();
}

/// The first canvas: the cloud at time t, and the learned score over it.
pub fn draw_data(canvas: &HtmlCanvasElement, cloud: &[[f32; 2]], field: &[[f32; 2]]) {
    if let Some(context) = context(canvas) {
        dots(&context, cloud, "#246", 1.5);
        score(&context, field);
    }
}

/// The second canvas: DDPM's paths (orange, faint) under DDIM's (blue).
pub fn draw_paths(canvas: &HtmlCanvasElement, ddpm: &[Vec<[f32; 2]>], ddim: &[Vec<[f32; 2]>]) {
    if let Some(context) = context(canvas) {
        paths(&context, ddpm, "rgba(220, 120, 0, 0.2)");
        paths(&context, ddim, "rgba(20, 80, 200, 0.9)");
    }
}

/// The third canvas: the samples (blue) over the data they were trained on (grey).
pub fn draw_samples(canvas: &HtmlCanvasElement, data: &[[f32; 2]], samples: &[[f32; 2]]) {
    if let Some(context) = context(canvas) {
        dots(&context, data, "#bbb", 1.0);
        dots(&context, samples, "#1450c8", 1.5);
    }
}
