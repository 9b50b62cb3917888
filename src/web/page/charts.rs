//! The page's SVG charts as polyline points: pure functions of numbers (tested natively).

use crate::diffusion::Schedule;

/// SVG polyline points for the loss chart: per-step losses averaged into at most 300 buckets
/// (the smoothing), log-scaled over a 300×100 box.
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

/// The quality chart in a 300×100 box: the (x, y) of FID at each step measured (log scale),
/// and the height of the floor's line on the same scale.
pub fn quality_points(fids: &[(usize, f64)], floor: f64) -> (Vec<(f64, f64)>, f64) {
    let log = |v: f64| v.max(1e-3).log10();
    let (lo, hi) = fids.iter().fold((log(floor), log(floor)), |(lo, hi), &(_, f)| (lo.min(log(f)), hi.max(log(f))));
    let span = (hi - lo).max(1e-3);
    let y = |v: f64| 95.0 - 90.0 * (log(v) - lo) / span;
    let last = fids.last().map_or(1, |&(step, _)| step.max(1)) as f64;
    (fids.iter().map(|&(step, f)| (300.0 * step as f64 / last, y(f))).collect(), y(floor))
}

/// Points as an SVG polyline's `points`.
pub fn polyline_points(points: &[(f64, f64)]) -> String {
    points.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect::<Vec<_>>().join(" ")
}

/// The loss on the fixed batch in words: the last measurement, and the first beside it.
pub fn fixed_loss_text(points: &[(usize, f32)]) -> String {
    match (points.first(), points.last()) {
        (Some(&(first, from)), Some(&(last, loss))) if last != first => format!("{loss:.4} at step {last}, from {from:.4} at step {first}"),
        (_, Some(&(step, loss))) => format!("{loss:.4} at step {step}"),
        _ => "–".into(),
    }
}

/// SVG polyline points of ᾱ_t over t = 0..T in a 300×100 box (ᾱ from 1 at the top to 0).
pub fn schedule_points(schedule: &Schedule) -> String {
    polyline(schedule.alphas_cumprod.iter().map(|&ab| ab))
}

/// SVG polyline points of log₁₀ SNR(t) = log₁₀ ᾱ_t / (1 − ᾱ_t), from +4 at the top to −6.
pub fn snr_points(schedule: &Schedule) -> String {
    polyline(schedule.alphas_cumprod.iter().map(|&ab| ((ab / (1.0 - ab)).log10().clamp(-6.0, 4.0) + 6.0) / 10.0))
}

/// Values in [0, 1] over t as points in a 300×100 box.
fn polyline(values: impl ExactSizeIterator<Item = f64>) -> String {
    let n = values.len().max(2) - 1;
    values
        .enumerate()
        .map(|(t, v)| format!("{:.1},{:.1}", 300.0 * t as f64 / n as f64, 95.0 - 90.0 * v))
        .collect::<Vec<_>>()
        .join(" ")
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quality_chart_spans_the_floor_and_every_measurement() {
        // FID 100 at step 500, 10 at step 1000, floor 1: log10 from 0 (bottom, y = 95) to 2 (top, y = 5).
        let (points, floor) = quality_points(&[(500, 100.0), (1000, 10.0)], 1.0);
        assert_eq!(polyline_points(&points), "150.0,5.0 300.0,50.0");
        assert_eq!(floor, 95.0);
        assert!(quality_points(&[], 3.0).0.is_empty());
    }

    #[test]
    fn the_loss_chart_averages_into_buckets_and_spans_the_box() {
        assert_eq!(chart_points(&[]), "");
        let points = chart_points(&[1.0, 0.1]);
        assert_eq!(points, "0.0,5.0 300.0,95.0", "log scale: the larger loss at the top");
        let many = vec![0.5f32; 1000];
        assert_eq!(chart_points(&many).split(' ').count(), 250, "1000 losses in buckets of 4");
    }

    #[test]
    fn the_fixed_batch_loss_reads_last_from_first() {
        assert_eq!(fixed_loss_text(&[]), "–");
        assert_eq!(fixed_loss_text(&[(0, 0.98766)]), "0.9877 at step 0");
        assert_eq!(fixed_loss_text(&[(0, 0.98766), (10, 0.5), (12, 0.41234)]), "0.4123 at step 12, from 0.9877 at step 0");
    }

    #[test]
    fn schedule_charts_run_from_the_top_left_down() {
        let schedule = Schedule::ddpm();
        let points = schedule_points(&schedule);
        assert!(points.starts_with("0.0,5.0"), "ᾱ_0 ≈ 1 is at the top: {}", &points[..20]);
        assert_eq!(points.split(' ').count(), schedule.len());
    }
}
