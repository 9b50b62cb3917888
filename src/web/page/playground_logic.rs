//! The playground panel's logic apart from drawing: which data a choice means, what the Train
//! button does, how the work on the page's thread is paced, and the texts the panel shows. Pure
//! (tested natively); the panel's components are `playground.rs`, its work on the page's CPU
//! `playground_work.rs`.

use crate::data::{PointSet, PointShape};
use crate::names::UnknownName;
use crate::playground::Playground;

/// The data select's value for points the user draws (the others name a [`PointShape`]).
pub const DRAW: &str = "draw";
/// Work on the page's thread runs in slices of this many milliseconds between the browser's
/// frames, so that it never blocks the page for long.
pub const SLICE_MS: f64 = 10.0;
/// While training, the views that follow the model are redrawn every this many milliseconds.
pub const VIEW_MS: f64 = 400.0;

/// The data select's values, in menu order: the shapes, then [`DRAW`].
pub fn data_choices() -> Vec<&'static str> {
    PointShape::ALL.iter().map(|s| s.name()).chain([DRAW]).collect()
}

/// The data chosen first.
pub fn first_choice() -> &'static str {
    PointShape::EightGaussians.name()
}

/// What the data select shows for a value.
pub fn choice_label(choice: &str) -> &str {
    if choice == DRAW { "draw your own" } else { choice }
}

/// What the first canvas's caption adds while the user may draw on it.
pub fn draw_hint(choice: &str) -> &'static str {
    if choice == DRAW { " · draw here" } else { "" }
}

/// The data of a choice: the drawn points, or the generated shape it names.
pub fn point_set(choice: &str, drawn: &[[f32; 2]]) -> Result<PointSet, String> {
    match choice {
        DRAW => PointSet::drawn(drawn.to_vec()).map_err(|e| e.to_string()),
        name => {
            let shape: PointShape = name.parse().map_err(|e: UnknownName| e.to_string())?;
            PointSet::generate(shape, Playground::POINTS, 0).map_err(|e| e.to_string())
        }
    }
}

/// What the Train button does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrainPress {
    /// Training: pause it (the run stays).
    Pause,
    /// Paused: train the run on.
    Resume,
    /// No run yet (a new choice of data or Start over dropped it): start one on the data.
    Start,
}

impl TrainPress {
    pub fn of(running: bool, has_run: bool) -> Self {
        match (running, has_run) {
            (true, _) => Self::Pause,
            (false, true) => Self::Resume,
            (false, false) => Self::Start,
        }
    }
}

/// The Train button's label.
pub fn train_label(running: bool) -> &'static str {
    if running { "Pause" } else { "Train" }
}

/// Time since a mark on the browser's clock (ms): whether the current slice has room for
/// more work, and whether it is time to hand the thread back (or redraw).
#[derive(Clone, Copy, Debug)]
pub struct Pacer {
    every: f64,
    since: f64,
}

impl Pacer {
    pub fn new(every: f64, now: f64) -> Self {
        Self { every, since: now }
    }

    /// More than `every` ms since the mark.
    pub fn due(&self, now: f64) -> bool {
        now - self.since > self.every
    }

    /// Less than `every` ms since the mark.
    pub fn within(&self, now: f64) -> bool {
        now - self.since < self.every
    }

    pub fn restart(&mut self, now: f64) {
        self.since = now;
    }
}

/// Training steps per second: `steps` in `elapsed_ms` (a millisecond at least).
pub fn steps_per_second(steps: usize, elapsed_ms: f64) -> f64 {
    steps as f64 / (elapsed_ms / 1000.0).max(1e-3)
}

pub fn step_text(step: usize) -> String {
    format!("step {step}")
}

/// The last step's loss, once there is one.
pub fn loss_text(loss: Option<f32>) -> String {
    loss.map_or(String::new(), |l| format!("loss {l:.4}"))
}

/// The training speed, while it trains.
pub fn rate_text(running: bool, rate: f64) -> String {
    if running { format!("{rate:.0} steps/s on the CPU") } else { String::new() }
}

/// The time slider's and the DDIM select's values (0 and the default steps where they are not
/// numbers).
pub fn t_input(text: &str) -> usize {
    text.parse().unwrap_or(0)
}

pub fn ddim_steps_input(text: &str) -> usize {
    text.parse().unwrap_or(Playground::DEFAULT_DDIM_STEPS)
}

/// The floor of the sampling quality: the mean distance from as many fresh points of a
/// generated shape as there are samples to the data (drawn points have none).
pub fn fresh_distance(choice: &str, data: &[[f32; 2]]) -> Option<f64> {
    let shape: PointShape = choice.parse().ok()?;
    let fresh = PointSet::generate(shape, Playground::SAMPLES, 1).ok()?;
    Some(Playground::nearest_distance(&fresh.points, data))
}

/// The sampling quality in words: `count` samples by `sampler` lie `distance` from the data on
/// average, beside the floor (where there is one) and their starting noise's `noise`.
pub fn quality_text(count: usize, sampler: &str, distance: f64, floor: Option<f64>, noise: f64) -> String {
    let floor = floor.map(|f| format!(" (fresh points of the shape: {f:.3})")).unwrap_or_default();
    format!("{count} samples by {sampler}: mean distance to the nearest data point {distance:.3}{floor}; their starting noise x_T: {noise:.3}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_choices_are_the_shapes_then_drawing() {
        let choices = data_choices();
        assert_eq!(choices.len(), PointShape::ALL.len() + 1);
        assert_eq!(choices.last(), Some(&DRAW));
        assert!(choices.contains(&first_choice()));
        assert_eq!(choice_label(DRAW), "draw your own");
        assert_eq!(choice_label("two-moons"), "two-moons", "a shape shows its name");
        assert_eq!((draw_hint(DRAW), draw_hint("two-moons")), (" · draw here", ""));
    }

    #[test]
    fn a_choice_brings_its_data_or_says_why_not() {
        let shape = point_set(first_choice(), &[]).unwrap();
        assert_eq!(shape.points.len(), Playground::POINTS, "a shape brings its generated points, the drawing aside");
        let drawn = point_set(DRAW, &[[0.0, 0.0], [1.0, 1.0]]).unwrap();
        assert_eq!(drawn.points, [[0.0, 0.0], [1.0, 1.0]]);
        // The browser test (tests/browser/playground.mjs) expects this refusal's words.
        assert!(point_set(DRAW, &[[0.0, 0.0]]).unwrap_err().starts_with("1 drawn point: draw two or more"));
        let unknown = point_set("spiral", &[]).unwrap_err();
        assert!(unknown.contains("spiral") && unknown.contains(first_choice()), "it lists the valid ones: {unknown}");
    }

    #[test]
    fn train_pauses_a_running_model_resumes_a_paused_one_and_starts_one_where_there_is_none() {
        assert_eq!(TrainPress::of(true, true), TrainPress::Pause);
        assert_eq!(TrainPress::of(false, true), TrainPress::Resume);
        assert_eq!(TrainPress::of(false, false), TrainPress::Start);
        assert_eq!((train_label(true), train_label(false)), ("Pause", "Train"));
    }

    #[test]
    fn the_pacer_splits_at_its_interval() {
        let mut pacer = Pacer::new(SLICE_MS, 1000.0);
        assert!(pacer.within(1009.0) && !pacer.due(1009.0));
        assert!(!pacer.within(1010.0) && !pacer.due(1010.0), "at exactly 10 ms a slice is over, and no yield is due yet");
        assert!(pacer.due(1011.0));
        pacer.restart(1011.0);
        assert!(!pacer.due(1020.0) && pacer.due(1022.0));
    }

    #[test]
    fn speed_counts_steps_per_second_and_survives_no_time() {
        assert_eq!(steps_per_second(300, 1500.0), 200.0);
        assert_eq!(steps_per_second(2, 0.0), 2000.0, "no time yet counts as a millisecond");
        assert_eq!(rate_text(true, 199.6), "200 steps/s on the CPU");
        assert_eq!(rate_text(false, 199.6), "", "paused: no speed");
    }

    #[test]
    fn the_numbers_read_as_the_browser_tests_parse_them() {
        // tests/browser/playground.mjs reads "step N" and "loss X" back.
        assert_eq!(step_text(1500), "step 1500");
        assert_eq!(loss_text(Some(0.123456)), "loss 0.1235");
        assert_eq!(loss_text(None), "");
        assert_eq!((t_input("300"), t_input("")), (300, 0));
        assert_eq!((ddim_steps_input("10"), ddim_steps_input("x")), (10, Playground::DEFAULT_DDIM_STEPS));
    }

    #[test]
    fn quality_says_distance_floor_and_noise() {
        let text = quality_text(1000, "DDIM-50", 0.02912, Some(0.0111), 0.3712);
        assert_eq!(text, "1000 samples by DDIM-50: mean distance to the nearest data point 0.029 (fresh points of the shape: 0.011); their starting noise x_T: 0.371");
        assert!(!quality_text(1000, "DDIM-50", 0.1, None, 0.3).contains("fresh"), "drawn data have no floor");
    }

    #[test]
    fn fresh_points_of_a_shape_lie_near_its_data_and_a_drawing_has_no_floor() {
        let data = point_set(first_choice(), &[]).unwrap().points;
        let floor = fresh_distance(first_choice(), &data).unwrap();
        // Eight Gaussians of σ = 0.1: fresh points lie ~0.01 from 4096 others (the browser test's
        // "fresh points ~0.011"); x_T ~ N(0, I) would lie ~0.37 away.
        assert!(floor > 0.0 && floor < 0.05, "{floor}");
        assert_eq!(fresh_distance(DRAW, &data), None);
    }
}
