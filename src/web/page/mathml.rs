//! The page's equations as lines that fit a panel: MathML breaks no lines, so a long equation
//! is written as pieces (each a display equation) that sit side by side where the panel is wide
//! enough and wrap one below the other where it is not (`.equation-line` in `www/style.css`).
//! Pure string functions, tested natively.

/// One line of equations: its pieces (MathML content), each a display equation.
pub fn line(pieces: &[String]) -> String {
    let pieces: String = pieces.iter().map(|p| format!(r#"<math display="block">{p}</math>"#)).collect();
    format!(r#"<div class="equation-line">{pieces}</div>"#)
}

/// A one-line display equation (`<math display="block">…</math>`) as a [`line`] that can wrap:
/// split at its top-level spaces (`<mspace …/>`, which separate its parts: "x = …, y = …").
pub fn breakable(math: &str) -> String {
    let body = math.find('>').map_or(math, |open| &math[open + 1..]);
    let body = body.strip_suffix("</math>").unwrap_or(body);
    let (mut pieces, mut start, mut depth, mut at) = (Vec::new(), 0, 0usize, 0);
    while let Some(open) = body[at..].find('<').map(|i| at + i) {
        let Some(close) = body[open..].find('>').map(|i| open + i + 1) else { break };
        let tag = &body[open..close];
        if tag.starts_with("</") {
            depth = depth.saturating_sub(1);
        } else if tag.ends_with("/>") {
            if depth == 0 && tag.starts_with("<mspace") {
                pieces.push(body[start..open].to_string());
                start = close;
            }
        } else {
            depth += 1;
        }
        at = close;
    }
    pieces.push(body[start..].to_string());
    line(&pieces)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diffusion::SamplerName;

    #[test]
    fn an_equation_breaks_at_its_top_level_spaces_only() {
        let math = r#"<math display="block"><mi>a</mi><mo>,</mo><mspace width="1em"/><mrow><mi>b</mi><mspace width="0.5em"/><mi>c</mi></mrow><mo>,</mo><mspace width="0.5em"/><mi>d</mi></math>"#;
        assert_eq!(
            breakable(math),
            r#"<div class="equation-line"><math display="block"><mi>a</mi><mo>,</mo></math><math display="block"><mrow><mi>b</mi><mspace width="0.5em"/><mi>c</mi></mrow><mo>,</mo></math><math display="block"><mi>d</mi></math></div>"#
        );
        assert_eq!(breakable(r#"<math display="block"><mi>x</mi></math>"#), r#"<div class="equation-line"><math display="block"><mi>x</mi></math></div>"#);
    }

    #[test]
    fn the_samplers_equations_break_into_balanced_pieces() {
        for equation in SamplerName::equations() {
            let line = breakable(equation);
            assert_eq!(line.matches("<math ").count(), equation.matches("<mspace").count() + 1 - line.matches("<mspace").count());
            // Every piece is well nested: as many opening tags as closing ones.
            for piece in line.split("<math display=\"block\">").skip(1) {
                let piece = piece.split("</math>").next().unwrap();
                let opens = piece.matches('<').count() - piece.matches("</").count() - piece.matches("/>").count();
                assert_eq!(opens, piece.matches("</").count(), "{piece}");
            }
        }
        assert!(breakable(SamplerName::DpmSolver.equation()).matches("<math ").count() >= 4, "DPM-Solver++'s long line breaks");
    }
}
