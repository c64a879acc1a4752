//! The bar chart, written by hand: grouped bars of median handshakes/s per
//! configuration, one bar per protocol, with the min–max over rounds as a
//! whisker and the ratio to `internal` above each bar. (No plotting crate:
//! a few rectangles and labels are not worth a dependency tree.)

use std::fmt::Write as _;

use crate::setup::{Config, Proto};
use crate::summary::Row;

const W: f64 = 760.0;
const H: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;

fn colour(p: Proto) -> &'static str {
    match p {
        Proto::Tls12 => "#4e79a7",
        Proto::Tls13 => "#f28e2b",
    }
}

/// A "nice" axis maximum and tick step for values up to `max`.
fn axis(max: f64) -> (f64, f64) {
    let max = if max.is_finite() && max > 0.0 {
        max
    } else {
        1.0
    };
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    ((max / step).ceil() * step, step)
}

/// The chart of `rows` with a title (e.g. the machine and date).
pub fn chart(rows: &[Row], title: &str) -> String {
    let configs: Vec<Config> = Config::ALL
        .into_iter()
        .filter(|c| rows.iter().any(|r| r.config == *c))
        .collect();
    let protos: Vec<Proto> = Proto::ALL
        .into_iter()
        .filter(|p| rows.iter().any(|r| r.proto == *p))
        .collect();
    let top = rows
        .iter()
        .map(|r| r.figures.rate_max.max(r.figures.rate))
        .fold(0.0, f64::max);
    let (ymax, step) = axis(top);
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let y = |v: f64| TOP + plot_h * (1.0 - (v / ymax).clamp(0.0, 1.0));
    let group_w = plot_w / configs.len().max(1) as f64;
    let bar_w = group_w * 0.7 / protos.len().max(1) as f64;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15" font-weight="bold">TLS handshakes per second (median of rounds; whiskers: min–max)</text>"#,
        W / 2.0
    );
    let _ = writeln!(
        s,
        r##"<text x="{}" y="39" text-anchor="middle" fill="#555">{}</text>"##,
        W / 2.0,
        escape(title)
    );
    // Grid and y labels.
    let mut v = 0.0;
    while v <= ymax + step / 2.0 {
        let yy = y(v);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{v:.0}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            yy + 4.0
        );
        v += step;
    }
    let _ = writeln!(
        s,
        r#"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{:.1}" stroke="black"/><line x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="black"/>"#,
        TOP + plot_h,
        TOP + plot_h,
        W - RIGHT,
        TOP + plot_h
    );
    for (gi, c) in configs.iter().enumerate() {
        let gx = LEFT + group_w * gi as f64 + group_w * 0.15;
        for (pi, p) in protos.iter().enumerate() {
            let Some(r) = rows.iter().find(|r| r.config == *c && r.proto == *p) else {
                continue;
            };
            let x = gx + bar_w * pi as f64;
            let (top_y, base) = (y(r.figures.rate), y(0.0));
            let _ = writeln!(
                s,
                r#"<rect x="{x:.1}" y="{top_y:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{} {}: {:.0} handshakes/s</title></rect>"#,
                bar_w - 2.0,
                (base - top_y).max(0.0),
                colour(*p),
                c.name(),
                p.name(),
                r.figures.rate
            );
            let cx = x + (bar_w - 2.0) / 2.0;
            if r.figures.rate_min.is_finite() {
                let _ = writeln!(
                    s,
                    r#"<line x1="{cx:.1}" y1="{:.1}" x2="{cx:.1}" y2="{:.1}" stroke="black"/>"#,
                    y(r.figures.rate_min),
                    y(r.figures.rate_max)
                );
            }
            let label = match r.ratio {
                Some(q) if r.config != Config::Internal => {
                    format!("{:.0} ({q:.2}×)", r.figures.rate)
                }
                _ => format!("{:.0}", r.figures.rate),
            };
            let _ = writeln!(
                s,
                r#"<text x="{cx:.1}" y="{:.1}" text-anchor="middle" font-size="10">{label}</text>"#,
                y(r.figures.rate_max.max(r.figures.rate)) - 5.0
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="13">{}</text>"#,
            LEFT + group_w * (gi as f64 + 0.5),
            TOP + plot_h + 20.0,
            c.name()
        );
    }
    // Legend.
    for (pi, p) in protos.iter().enumerate() {
        let lx = LEFT + 10.0 + 110.0 * pi as f64;
        let ly = H - 18.0;
        let _ = writeln!(
            s,
            r#"<rect x="{lx}" y="{:.1}" width="12" height="12" fill="{}"/><text x="{:.1}" y="{ly}">{}</text>"#,
            ly - 10.0,
            colour(*p),
            lx + 16.0,
            p.name()
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#555">(×: ratio to internal, paired by round)</text>"##,
        W - RIGHT,
        H - 8.0
    );
    s.push_str("</svg>\n");
    s
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_axis() {
        assert_eq!(axis(9_300.0), (10_000.0, 2_000.0));
        assert_eq!(axis(1_000.0), (1_000.0, 200.0));
        assert_eq!(axis(0.0), (1.0, 0.2));
    }
}
