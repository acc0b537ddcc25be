//! The growth figure of `bench/RESULTS.md`, as hand-written SVG text: no
//! plotting crate for one small chart.
//!
//! Each panel is a log-log line chart of how figures grow with the size of
//! the workload. Figures in different units (ms, MiB, bytes) share one axis
//! because every line is normalised to its own value at the smallest size:
//! a line on the dashed diagonal grows in proportion to the size, a flat
//! line does not grow at all.

use std::fmt::Write as _;

/// One figure measured at each size of its panel (`None`: not measured).
pub struct Series {
    /// Legend text.
    pub name: String,
    /// One value per size of the panel, in the panel's order.
    pub values: Vec<Option<f64>>,
}

/// One chart: the sizes on the x axis and the figures measured at them.
pub struct Panel {
    /// Title above the chart.
    pub title: String,
    /// What the sizes count (x axis label).
    pub x_label: String,
    /// The sizes, ascending and positive.
    pub sizes: Vec<f64>,
    /// The lines.
    pub series: Vec<Series>,
}

const PANEL_W: f64 = 470.0;
const LEFT: f64 = 62.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 44.0;
const PLOT_H: f64 = 260.0;
const BOTTOM: f64 = 48.0;
const LEGEND_ROW: f64 = 17.0;
const COLOURS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// Where a panel's plot area sits and how values map onto it.
struct Frame {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
    /// log10 of the x range (relative sizes).
    lx: (f64, f64),
    /// log10 of the y range (relative values).
    ly: (f64, f64),
}

impl Frame {
    fn px(&self, rel_size: f64) -> f64 {
        self.x + (rel_size.log10() - self.lx.0) / (self.lx.1 - self.lx.0) * self.w
    }

    fn py(&self, rel_value: f64) -> f64 {
        self.y + self.h - (rel_value.log10() - self.ly.0) / (self.ly.1 - self.ly.0) * self.h
    }
}

/// A series as (size / smallest size, value / value at the smallest size)
/// points; empty when it has no positive value at the smallest size (a
/// log axis cannot show it).
fn normalised(sizes: &[f64], values: &[Option<f64>]) -> Vec<(f64, f64)> {
    let (Some(&s0), Some(Some(v0))) = (sizes.first(), values.first()) else {
        return Vec::new();
    };
    if !(s0 > 0.0 && *v0 > 0.0 && v0.is_finite()) {
        return Vec::new();
    }
    sizes
        .iter()
        .zip(values)
        .filter_map(|(s, v)| {
            let v = (*v)?;
            (v > 0.0 && v.is_finite() && *s > 0.0).then(|| (s / s0, v / v0))
        })
        .collect()
}

/// Escapes text for an SVG text node or attribute.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A size as the axis shows it: `1 000`, `10 000`, `100 000`.
fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x.round());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// A relative value as the y axis shows it: `×0.1`, `×1`, `×100`.
fn times(exp: i32) -> String {
    if exp < 0 {
        format!("×{}", 10f64.powi(exp))
    } else {
        format!("×{}", thousands(10f64.powi(exp)))
    }
}

/// The whole figure: `panels` side by side under `title`.
pub fn growth_chart(title: &str, panels: &[Panel]) -> String {
    let rows = panels.iter().map(|p| p.series.len()).max().unwrap_or(0) + 2;
    let width = PANEL_W * panels.len().max(1) as f64;
    let height = TOP + PLOT_H + BOTTOM + LEGEND_ROW * rows as f64 + 8.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        s,
        r#"<rect x="0" y="0" width="{width:.0}" height="{height:.0}" fill="white"/>"#
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="16" text-anchor="middle" font-size="13" font-weight="bold">{}</text>"#,
        width / 2.0,
        escape(title)
    );
    for (i, panel) in panels.iter().enumerate() {
        write_panel(&mut s, panel, PANEL_W * i as f64);
    }
    s.push_str("</svg>\n");
    s
}

fn write_panel(s: &mut String, panel: &Panel, x0: f64) {
    let lines: Vec<(&str, Vec<(f64, f64)>)> = panel
        .series
        .iter()
        .map(|se| (se.name.as_str(), normalised(&panel.sizes, &se.values)))
        .collect();
    let s0 = panel.sizes.first().copied().unwrap_or(1.0);
    let span = panel.sizes.last().copied().unwrap_or(s0) / s0;
    let span = if span.is_finite() && span > 1.0 {
        span
    } else {
        10.0
    };
    // The y range holds every point, ×1 and the proportional line, in
    // whole decades.
    let (mut lo, mut hi) = (1.0f64, span);
    for (_, pts) in &lines {
        for &(_, v) in pts {
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    let y_lo = lo.log10().floor();
    let y_hi = hi.log10().ceil().max(y_lo + 1.0);
    let f = Frame {
        x: x0 + LEFT,
        y: TOP,
        w: PANEL_W - LEFT - RIGHT,
        h: PLOT_H,
        lx: (0.0, span.log10()),
        ly: (y_lo, y_hi),
    };
    let _ = writeln!(s, "<g>");
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="34" text-anchor="middle" font-size="12">{}</text>"#,
        f.x + f.w / 2.0,
        escape(&panel.title)
    );
    // Grid and y ticks, one per decade.
    for e in (y_lo as i32)..=(y_hi as i32) {
        let y = f.py(10f64.powi(e));
        let _ = writeln!(
            s,
            r##"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/>"##,
            f.x,
            f.x + f.w
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            f.x - 5.0,
            y + 4.0,
            escape(&times(e))
        );
    }
    // x ticks at the measured sizes.
    for &size in &panel.sizes {
        let x = f.px(size / s0);
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/>"##,
            f.y,
            f.y + f.h
        );
        let _ = writeln!(
            s,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            f.y + f.h + 15.0,
            thousands(size)
        );
    }
    let _ = writeln!(
        s,
        r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="#444"/>"##,
        f.x, f.y, f.w, f.h
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{} (log)</text>"#,
        f.x + f.w / 2.0,
        f.y + f.h + 32.0,
        escape(&panel.x_label)
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate({:.1} {:.1}) rotate(-90)" text-anchor="middle">relative to the smallest size (log)</text>"#,
        x0 + 14.0,
        f.y + f.h / 2.0
    );
    // References: proportional growth and no growth.
    let _ = writeln!(
        s,
        r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#888" stroke-dasharray="6 4"/>"##,
        f.px(1.0),
        f.py(1.0),
        f.px(span),
        f.py(span)
    );
    let _ = writeln!(
        s,
        r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#888" stroke-dasharray="2 3"/>"##,
        f.px(1.0),
        f.py(1.0),
        f.px(span),
        f.py(1.0)
    );
    let legend_y = f.y + f.h + BOTTOM;
    for (i, (name, pts)) in lines.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        if !pts.is_empty() {
            let points: Vec<String> = pts
                .iter()
                .map(|&(x, y)| format!("{:.1},{:.1}", f.px(x), f.py(y)))
                .collect();
            let _ = writeln!(
                s,
                r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
                points.join(" ")
            );
            for &(x, y) in pts {
                let _ = writeln!(
                    s,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"/>"#,
                    f.px(x),
                    f.py(y)
                );
            }
        }
        let ly = legend_y + LEGEND_ROW * i as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{colour}" stroke-width="2"/>"#,
            f.x,
            f.x + 22.0
        );
        let growth = match (pts.first(), pts.last()) {
            (Some(_), Some(&(_, last))) if pts.len() > 1 => format!(" (×{last:.2})"),
            _ => " (not measured)".to_owned(),
        };
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}">{}{}</text>"#,
            f.x + 28.0,
            ly + 4.0,
            escape(name),
            escape(&growth)
        );
    }
    let ly = legend_y + LEGEND_ROW * lines.len() as f64;
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{:.1}" fill="#666">dashed: grows as the size (×{}); dotted: does not grow</text>"##,
        f.x,
        ly + 4.0,
        thousands(span)
    );
    let _ = writeln!(s, "</g>");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panel() -> Panel {
        Panel {
            title: "files <&> certs".into(),
            x_label: "certificates".into(),
            sizes: vec![1000.0, 10_000.0, 100_000.0],
            series: vec![
                Series {
                    name: "cold scan".into(),
                    values: vec![Some(0.06), Some(0.6), Some(6.5)],
                },
                Series {
                    name: "RSS".into(),
                    values: vec![Some(6000.0), Some(14_000.0), None],
                },
                Series {
                    name: "p99 \"gzip\"".into(),
                    values: vec![Some(2.0), Some(1.5), Some(0.1)],
                },
                Series {
                    name: "missing".into(),
                    values: vec![None, Some(1.0), Some(2.0)],
                },
            ],
        }
    }

    /// Every number in the `name="…"` attribute values of `svg`.
    fn numbers(svg: &str, name: &str) -> Vec<f64> {
        let key = format!(" {name}=\"");
        let mut out = Vec::new();
        for (i, _) in svg.match_indices(&key) {
            let rest = &svg[i + key.len()..];
            let value = &rest[..rest.find('"').unwrap_or(0)];
            out.extend(
                value
                    .split([' ', ','])
                    .filter_map(|n| n.parse::<f64>().ok()),
            );
        }
        out
    }

    #[test]
    fn tags_balance_and_text_is_escaped() {
        let svg = growth_chart("growth & scale", &[panel(), panel()]);
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.ends_with("</svg>\n"));
        let mut stack = Vec::new();
        let mut rest = svg.as_str();
        while let Some(i) = rest.find('<') {
            let end = rest[i..].find('>').map(|e| i + e).expect("an unclosed tag");
            let tag = &rest[i + 1..end];
            let name: String = tag
                .trim_start_matches('/')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            if let Some(closing) = tag.strip_prefix('/') {
                assert_eq!(stack.pop().as_deref(), Some(closing.trim()), "in {svg}");
            } else if !tag.ends_with('/') {
                stack.push(name);
            }
            // Text between tags holds no raw markup characters.
            let text_end = rest[end..].find('<').map_or(rest.len(), |t| end + t);
            assert!(!rest[end + 1..text_end].contains('>'));
            rest = &rest[end + 1..];
        }
        assert!(stack.is_empty(), "unclosed: {stack:?}");
        assert!(svg.contains("files &lt;&amp;&gt; certs"));
        assert!(svg.contains("p99 &quot;gzip&quot;"));
        assert!(svg.contains(">100 000<"));
    }

    #[test]
    fn points_stay_in_their_plot() {
        let svg = growth_chart("t", &[panel(), panel()]);
        let width = PANEL_W * 2.0;
        let (top, bottom) = (TOP - 0.05, TOP + PLOT_H + 0.05);
        let xs = numbers(&svg, "cx");
        let ys = numbers(&svg, "cy");
        // 3 + 2 + 3 points per panel; "missing" has no base to scale by.
        assert_eq!(xs.len(), 16);
        for (x, y) in xs.iter().zip(&ys) {
            assert!((0.0..=width).contains(x), "x {x}");
            assert!((top..=bottom).contains(y), "y {y}");
        }
        let poly = numbers(&svg, "points");
        assert_eq!(poly.len(), 32);
        for pair in poly.chunks(2) {
            assert!((0.0..=width).contains(&pair[0]));
            assert!((top..=bottom).contains(&pair[1]));
        }
    }

    #[test]
    fn normalises_to_the_smallest_size() {
        let pts = normalised(&[10.0, 100.0], &[Some(4.0), Some(40.0)]);
        assert_eq!(pts, vec![(1.0, 1.0), (10.0, 10.0)]);
        assert!(normalised(&[10.0, 100.0], &[Some(0.0), Some(1.0)]).is_empty());
        assert!(normalised(&[10.0, 100.0], &[None, Some(1.0)]).is_empty());
        assert_eq!(thousands(100_000.0), "100 000");
        assert_eq!(thousands(300.0), "300");
        assert_eq!(times(-1), "×0.1");
        assert_eq!(times(3), "×1 000");
    }
}
