//! The playground's square of the plane on its canvases: data units to pixels and back (the
//! pen), the score's arrows, the ends of the reverse paths. Pure (tested natively); the
//! canvases are drawn in `playground_canvas.rs`.

use crate::playground::Playground;

/// A canvas's side in pixels: it shows ±[`Playground::EXTENT`] on both axes.
pub const SIDE: u32 = 320;

/// A point in the canvas's pixels: x to the right, y down from the top (larger y in the data
/// is higher on the canvas).
pub fn to_pixel(p: [f32; 2]) -> (f64, f64) {
    let e = Playground::EXTENT;
    (f64::from((p[0] + e) / (2.0 * e)) * f64::from(SIDE), f64::from((e - p[1]) / (2.0 * e)) * f64::from(SIDE))
}

/// The point under a pointer at `offset` (CSS pixels) on a canvas shown `client_width` CSS
/// pixels wide (the page may shrink it below [`SIDE`]).
pub fn from_offset(offset: (i32, i32), client_width: i32) -> [f32; 2] {
    let scale = f64::from(SIDE) / f64::from(client_width.max(1));
    let (x, y) = (f64::from(offset.0) * scale, f64::from(offset.1) * scale);
    let e = f64::from(Playground::EXTENT);
    [(x / f64::from(SIDE) * 2.0 * e - e) as f32, (e - y / f64::from(SIDE) * 2.0 * e) as f32]
}

/// The pen adds `p` to a stroke where it is more than [`Playground::PEN_SPACING`] from the
/// last point and the drawing holds fewer than [`Playground::MAX_DRAWN`]; true where it did.
pub fn pen_stroke(points: &mut Vec<[f32; 2]>, p: [f32; 2]) -> bool {
    let far = points.last().is_none_or(|q| (q[0] - p[0]).hypot(q[1] - p[1]) > Playground::PEN_SPACING);
    let adds = far && points.len() < Playground::MAX_DRAWN;
    if adds {
        points.push(p);
    }
    adds
}

/// One arrow in pixels: its shaft from `tail` to `tip`, and the two strokes of its head from
/// `tip` to `left` and `right`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Arrow {
    pub tail: (f64, f64),
    pub tip: (f64, f64),
    pub left: (f64, f64),
    pub right: (f64, f64),
}

/// Arrows of the score `field` at the points of the score view's grid, scaled so that the
/// longest is 90% of a cell; none where there is no finite, nonzero score.
pub fn arrows(field: &[[f32; 2]]) -> Vec<Arrow> {
    let grid = Playground::grid(Playground::GRID);
    let longest = field.iter().map(|s| s[0].hypot(s[1])).fold(0.0f32, f32::max);
    if longest <= 0.0 || !longest.is_finite() {
        return Vec::new();
    }
    let cell = 2.0 * Playground::EXTENT / (Playground::GRID - 1) as f32;
    let k = 0.9 * cell / longest;
    let arrow = |(&at, &s): (&[f32; 2], &[f32; 2])| {
        let ((x0, y0), (x1, y1)) = (to_pixel(at), to_pixel([at[0] + k * s[0], at[1] + k * s[1]]));
        let (dx, dy) = (x1 - x0, y1 - y0);
        let len = dx.hypot(dy).max(1e-9);
        let (ux, uy) = (dx / len, dy / len);
        // The head: two strokes back from the tip, at most 4 px, spread either side.
        let head = len.min(4.0);
        Arrow {
            tail: (x0, y0),
            tip: (x1, y1),
            left: (x1 - head * (ux - 0.5 * uy), y1 - head * (uy + 0.5 * ux)),
            right: (x1 - head * (ux + 0.5 * uy), y1 - head * (uy - 0.5 * ux)),
        }
    };
    grid.iter().zip(field).map(arrow).collect()
}

/// Where each path ends: the sample it reached.
pub fn ends(paths: &[Vec<[f32; 2]>]) -> Vec<[f32; 2]> {
    paths.iter().filter_map(|p| p.last().copied()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: (f64, f64), b: (f64, f64)) -> bool {
        (a.0 - b.0).abs() < 1e-4 && (a.1 - b.1).abs() < 1e-4
    }

    #[test]
    fn the_square_fills_the_canvas_with_y_up() {
        // EXTENT 3: (−3, 3) is the top-left corner, (3, −3) the bottom-right, 0 the middle.
        assert_eq!(to_pixel([-3.0, 3.0]), (0.0, 0.0));
        assert_eq!(to_pixel([3.0, -3.0]), (320.0, 320.0));
        assert_eq!(to_pixel([0.0, 0.0]), (160.0, 160.0));
        assert_eq!(to_pixel([0.0, 1.5]), (160.0, 80.0), "a higher point is nearer the top");
    }

    #[test]
    fn the_pen_reads_the_point_back_whatever_the_canvas_is_shown_at() {
        assert_eq!(from_offset((0, 0), 320), [-3.0, 3.0]);
        assert_eq!(from_offset((160, 160), 320), [0.0, 0.0]);
        // Shown at half size, the middle is at CSS pixel 80.
        assert_eq!(from_offset((80, 80), 160), [0.0, 0.0]);
        assert_eq!(from_offset((40, 120), 160), [-1.5, -1.5]);
        assert!(from_offset((1, 1), 0)[0].is_finite(), "a hidden canvas (width 0) divides by 1");
        for p in [[1.5f32, -0.75], [-2.25, 2.625]] {
            let (x, y) = to_pixel(p);
            assert_eq!(from_offset((x as i32, y as i32), 320), p, "{p:?} sits on a whole pixel");
        }
    }

    #[test]
    fn the_pen_spaces_its_points_and_stops_at_the_most_drawn() {
        let mut points = Vec::new();
        assert!(pen_stroke(&mut points, [0.0, 0.0]), "the first point always");
        assert!(!pen_stroke(&mut points, [0.03, 0.0]), "0.03 is within PEN_SPACING 0.04 of the last");
        assert!(pen_stroke(&mut points, [0.05, 0.0]));
        assert_eq!(points, [[0.0, 0.0], [0.05, 0.0]]);
        let mut full: Vec<[f32; 2]> = (0..Playground::MAX_DRAWN).map(|i| [i as f32, 0.0]).collect();
        assert!(!pen_stroke(&mut full, [-5.0, -5.0]), "MAX_DRAWN points: no more");
        assert_eq!(full.len(), Playground::MAX_DRAWN);
    }

    #[test]
    fn the_longest_arrow_is_nine_tenths_of_a_cell() {
        let n = Playground::GRID * Playground::GRID;
        assert!(arrows(&vec![[0.0, 0.0]; n]).is_empty(), "no score, no arrows");
        assert!(arrows(&[[f32::NAN, 0.0]]).is_empty(), "a diverged model draws nothing");
        // All pointing right, the first twice as long: a cell is 2·3/20 data units = 16 px.
        let mut field = vec![[1.0f32, 0.0]; n];
        field[0] = [2.0, 0.0];
        let drawn = arrows(&field);
        assert_eq!(drawn.len(), n);
        let shaft = |a: &Arrow| a.tip.0 - a.tail.0;
        assert!((shaft(&drawn[0]) - 0.9 * 16.0).abs() < 1e-3, "{}", shaft(&drawn[0]));
        assert!((shaft(&drawn[1]) - 0.45 * 16.0).abs() < 1e-3);
        // The grid's first point is its top-left corner; a flat arrow's head spreads 2 px up and down, 4 px back.
        assert!(close(drawn[0].tail, (0.0, 0.0)));
        assert!(close(drawn[0].left, (drawn[0].tip.0 - 4.0, -2.0)) && close(drawn[0].right, (drawn[0].tip.0 - 4.0, 2.0)));
    }

    #[test]
    fn paths_end_at_their_last_point() {
        let paths = vec![vec![[0.0, 0.0], [1.0, 1.0]], vec![], vec![[2.0, 2.0]]];
        assert_eq!(ends(&paths), [[1.0, 1.0], [2.0, 2.0]], "an empty path has no end");
    }
}
