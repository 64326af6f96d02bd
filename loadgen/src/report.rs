//! `--report out.html` and `loadgen report`: one self-contained HTML page (inline SVG, no
//! script, nothing fetched) with a summary table, throughput and p99 second by second, and
//! the latency percentile curve, for one or more results side by side. Results are the
//! JSON objects of `--json`, so runs made apart (other machines, other days) can be put
//! on one page.

use crate::run::{self, RunOpts, RunResult};
use anyhow::{anyhow, Context, Result};
use serde_json::Value;
use std::fmt::Write;

/// One result on the page.
pub struct Entry {
    pub label: String,
    pub v: Value,
}

impl Entry {
    pub fn from_run(o: &RunOpts, r: &RunResult) -> Result<Entry> {
        let v: Value = serde_json::from_str(&run::json(o, r)).context("loadgen's own JSON")?;
        Ok(Entry {
            label: format!("{} {}", o.workload.name(), o.server),
            v,
        })
    }

    /// A `--json` file; labelled by its file name.
    pub fn from_file(path: &str) -> Result<Entry> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
        let v: Value =
            serde_json::from_str(&text).with_context(|| format!("{path}: not a JSON result"))?;
        if v.get("loadgen").is_none() || v.get("ops_per_s").is_none() {
            return Err(anyhow!(
                "{path}: not a loadgen result (write one with `loadgen run --json FILE`)"
            ));
        }
        let label = std::path::Path::new(path)
            .file_stem()
            .map_or(path.to_string(), |s| s.to_string_lossy().into_owned());
        Ok(Entry { label, v })
    }

    fn f(&self, path: &[&str]) -> Option<f64> {
        let mut v = &self.v;
        for k in path {
            v = v.get(k)?;
        }
        v.as_f64()
    }

    fn s(&self, key: &str) -> String {
        match self.v.get(key) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| x.as_str().unwrap_or("?").to_string())
                .collect::<Vec<_>>()
                .join(","),
            Some(v) => v.to_string(),
            None => String::new(),
        }
    }

    /// (second, value) points from the per-second series: column 0 ops, 1 p50, 2 p99.
    fn series(&self, col: usize) -> Vec<(f64, f64)> {
        let Some(Value::Array(secs)) = self.v.get("seconds") else {
            return Vec::new();
        };
        secs.iter()
            .enumerate()
            .filter_map(|(i, s)| Some((i as f64 + 1.0, s.get(col)?.as_f64()?)))
            .collect()
    }

    /// (percentile, µs) points of the latency curve.
    fn curve(&self) -> Vec<(f64, f64)> {
        let Some(Value::Array(pts)) = self.v.get("percentiles_us") else {
            return Vec::new();
        };
        pts.iter()
            .filter_map(|p| Some((p.get(0)?.as_f64()?, p.get(1)?.as_f64()?)))
            .collect()
    }
}

const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A number in a few significant digits.
fn num(v: f64) -> String {
    if !v.is_finite() {
        "-".into()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The smallest 1, 2, 2.5 or 5 times a power of ten at or above `v` (> 0): an axis top
/// whose quarters are round numbers.
fn nice_ceil(v: f64) -> f64 {
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 4.0, 5.0, 8.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|&x| x >= v)
        .unwrap_or(10.0 * p)
}

/// The percentile axis: x = log10(1 / (1 - q)), so 90, 99, 99.9 ... are evenly spaced.
fn pct_x(q: f64) -> f64 {
    let q = q.min(99.9999) / 100.0;
    (1.0 / (1.0 - q)).log10()
}

struct Chart<'a> {
    title: &'a str,
    y_label: &'a str,
    x_percentile: bool,
    y_log: bool,
}

/// An SVG line chart of `lines` (label, points), each in its own colour.
fn chart(c: &Chart, lines: &[(String, Vec<(f64, f64)>)]) -> String {
    let (w, h, left, right, top, bottom) = (720.0, 300.0, 70.0, 20.0, 30.0, 60.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let tx = |x: f64| if c.x_percentile { pct_x(x) } else { x };
    let ty = |y: f64| if c.y_log { y.max(1e-3).log10() } else { y };
    let pts: Vec<(f64, f64)> = lines
        .iter()
        .flat_map(|(_, p)| p.iter().map(|&(x, y)| (tx(x), ty(y))))
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         font-family=\"sans-serif\" font-size=\"11\">\
         <text x=\"{}\" y=\"18\" text-anchor=\"middle\" font-size=\"13\">{}</text>",
        w / 2.0,
        esc(c.title)
    );
    if pts.is_empty() {
        svg += "<text x=\"360\" y=\"150\" text-anchor=\"middle\">no data</text></svg>";
        return svg;
    }
    let (mut x0, mut x1) = pts
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (mut y0, mut y1) = pts
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    if !c.y_log {
        y0 = 0.0;
    } else {
        y0 = y0.floor();
        y1 = y1.ceil();
    }
    if !c.x_percentile {
        x0 = x0.min(1.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if y1 <= y0 {
        y1 = y0 + 1.0;
    }
    if !c.y_log {
        y1 = nice_ceil(y1 * 1.02);
    }
    let sx = |x: f64| left + (x - x0) / (x1 - x0) * pw;
    let sy = |y: f64| top + ph - (y - y0) / (y1 - y0) * ph;
    // Axes, grid and tick labels.
    let _ = write!(
        svg,
        "<rect x=\"{left}\" y=\"{top}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#888\"/>"
    );
    let y_ticks: Vec<f64> = if c.y_log {
        (y0 as i64..=y1 as i64).map(|e| e as f64).collect()
    } else {
        (0..=4).map(|i| y0 + (y1 - y0) * i as f64 / 4.0).collect()
    };
    for t in y_ticks {
        let label = if c.y_log { num(10f64.powf(t)) } else { num(t) };
        let _ = write!(
            svg,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y}\" y2=\"{y}\" stroke=\"#eee\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{label}</text>",
            left + pw,
            left - 4.0,
            sy(t) + 4.0,
            y = sy(t)
        );
    }
    let x_ticks: Vec<(f64, String)> = if c.x_percentile {
        [0.0, 90.0, 99.0, 99.9, 99.99, 99.999]
            .iter()
            .map(|&q| (pct_x(q), format!("{q}")))
            .filter(|(x, _)| *x <= x1 + 1e-9)
            .collect()
    } else {
        let step = ((x1 - x0) / 8.0).ceil().max(1.0);
        let mut v = Vec::new();
        let mut x = x0.ceil();
        while x <= x1 {
            v.push((x, format!("{x:.0}")));
            x += step;
        }
        v
    };
    for (x, label) in x_ticks {
        let _ = write!(
            svg,
            "<line x1=\"{px}\" x2=\"{px}\" y1=\"{top}\" y2=\"{}\" stroke=\"#eee\"/>\
             <text x=\"{px}\" y=\"{}\" text-anchor=\"middle\">{label}</text>",
            top + ph,
            top + ph + 14.0,
            px = sx(x)
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\
         <text transform=\"translate(14 {}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
        left + pw / 2.0,
        top + ph + 30.0,
        if c.x_percentile {
            "percentile"
        } else {
            "second of the measured interval"
        },
        top + ph / 2.0,
        esc(c.y_label)
    );
    // The lines, and a legend under the plot.
    for (i, (label, p)) in lines.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let path: Vec<String> = p
            .iter()
            .map(|&(x, y)| (tx(x), ty(y)))
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
            .collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.8\" points=\"{}\"/>",
            path.join(" ")
        );
        let lx = left + (i % 4) as f64 * (pw / 4.0);
        let ly = h - 12.0 - (i / 4) as f64 * 0.0;
        let _ = write!(
            svg,
            "<rect x=\"{lx}\" y=\"{}\" width=\"12\" height=\"4\" fill=\"{color}\"/>\
             <text x=\"{}\" y=\"{ly}\">{}</text>",
            ly - 4.0,
            lx + 16.0,
            esc(label)
        );
    }
    svg + "</svg>"
}

fn summary(entries: &[Entry]) -> String {
    let mut t = String::from(
        "<table><tr><th>result</th><th>workload</th><th>servers</th><th>sessions × in flight</th>\
         <th>ops/s</th><th>p50 µs</th><th>p90 µs</th><th>p99 µs</th><th>p99.9 µs</th>\
         <th>max µs</th><th>errors</th><th>client CPU µs/op</th><th>server CPU µs/op</th></tr>",
    );
    for e in entries {
        let lat = |k: &str| e.f(&["latency_us", "all", k]).map_or("-".into(), num);
        let opt = |k: &str| e.f(&[k]).map_or("-".into(), num);
        let _ = write!(
            t,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} × {}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&e.label),
            esc(&e.s("describe")),
            esc(&e.s("servers")),
            e.s("sessions"),
            e.s("inflight"),
            opt("ops_per_s"),
            lat("p50"),
            lat("p90"),
            lat("p99"),
            lat("p999"),
            lat("max"),
            e.s("error_count"),
            opt("client_cpu_us_per_op"),
            opt("server_cpu_us_per_op"),
        );
    }
    t + "</table>"
}

/// Per operation kind of each result: count, rate and percentiles.
fn per_op(entries: &[Entry]) -> String {
    let mut t = String::from(
        "<table><tr><th>result</th><th>operation</th><th>count</th><th>per s</th>\
         <th>p50 µs</th><th>p90 µs</th><th>p99 µs</th><th>p99.9 µs</th><th>max µs</th></tr>",
    );
    for e in entries {
        let Some(Value::Object(ops)) = e.v.get("per_op") else {
            continue;
        };
        for (name, st) in ops {
            let lat = |k: &str| e.f(&["latency_us", name, k]).map_or("-".into(), num);
            let _ = write!(
                t,
                "<tr><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&e.label),
                esc(name),
                if st.get("counted").and_then(Value::as_bool) == Some(false) {
                    " (not counted)"
                } else {
                    ""
                },
                st.get("count").map_or("-".into(), |v| v.to_string()),
                st.get("per_s")
                    .and_then(Value::as_f64)
                    .map_or("-".into(), num),
                lat("p50"),
                lat("p90"),
                lat("p99"),
                lat("p999"),
                lat("max"),
            );
        }
    }
    t + "</table>"
}

/// The page: a title, an optional preformatted preamble (a comparison table), and for
/// each group (heading, results) the tables and three charts.
pub fn html(title: &str, preamble: &str, groups: &[(String, Vec<Entry>)]) -> String {
    let mut p = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{t}</title><style>\
         body{{font-family:sans-serif;margin:24px;color:#222}}\
         table{{border-collapse:collapse;margin:8px 0 16px}}\
         td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right;font-size:13px}}\
         td:first-child,th:first-child{{text-align:left}}\
         pre{{background:#f6f6f6;padding:8px;font-size:12px}}\
         svg{{display:block;margin:8px 0}}</style></head><body><h1>{t}</h1>",
        t = esc(title)
    );
    if !preamble.is_empty() {
        let _ = write!(p, "<pre>{}</pre>", esc(preamble));
    }
    for (heading, entries) in groups {
        if !heading.is_empty() {
            let _ = write!(p, "<h2>{}</h2>", esc(heading));
        }
        p += &summary(entries);
        let lines = |f: &dyn Fn(&Entry) -> Vec<(f64, f64)>| -> Vec<(String, Vec<(f64, f64)>)> {
            entries.iter().map(|e| (e.label.clone(), f(e))).collect()
        };
        p += &chart(
            &Chart {
                title: "throughput over time",
                y_label: "ops/s",
                x_percentile: false,
                y_log: false,
            },
            &lines(&|e| e.series(0)),
        );
        p += &chart(
            &Chart {
                title: "p99 latency over time",
                y_label: "µs (log)",
                x_percentile: false,
                y_log: true,
            },
            &lines(&|e| e.series(2)),
        );
        p += &chart(
            &Chart {
                title: "latency by percentile (counted operations)",
                y_label: "µs (log)",
                x_percentile: true,
                y_log: true,
            },
            &lines(&|e| e.curve()),
        );
        p += &per_op(entries);
    }
    p + "<p style=\"font-size:12px;color:#666\">Written by loadgen. Throughput and \
         latency are those the client saw; CPU per op is from getrusage (client) and \
         /proc (server, with --server-pid).</p></body></html>\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(label: &str, ops: f64) -> Entry {
        let v: Value = serde_json::from_str(&format!(
            "{{\"loadgen\": 1, \"workload\": \"rw\", \"describe\": \"90% <reads>\", \
             \"servers\": [\"127.0.0.1:1\"], \"sessions\": 2, \"inflight\": 1, \
             \"ops_per_s\": {ops}, \"error_count\": 0, \"client_cpu_us_per_op\": 0.5, \
             \"server_cpu_us_per_op\": null, \
             \"latency_us\": {{\"all\": {{\"count\": 3, \"p50\": 10.0, \"p90\": 20.0, \
             \"p99\": 30.0, \"p999\": 40.0, \"max\": 50.0, \"mean\": 12.0}}}}, \
             \"per_op\": {{\"getData\": {{\"count\": 3, \"per_s\": 3.0, \"counted\": true}}}}, \
             \"percentiles_us\": [[0, 5.0], [50, 10.0], [99, 30.0], [100, 50.0]], \
             \"seconds\": [[{ops}, 10.0, 30.0, 50.0], [{ops}, 11.0, 31.0, 51.0]]}}"
        ))
        .unwrap();
        Entry {
            label: label.into(),
            v,
        }
    }

    /// One page holds every result's figures and a line per result in each chart, with
    /// what came from the results escaped.
    #[test]
    fn page_has_tables_and_a_line_per_result() {
        let page = html(
            "t <1>",
            "a | b",
            &[(
                "g".into(),
                vec![entry("paddock", 1000.0), entry("zk", 250.0)],
            )],
        );
        assert!(page.starts_with("<!DOCTYPE html>") && page.ends_with("</html>\n"));
        assert!(page.contains("<title>t &lt;1&gt;</title>"));
        assert!(page.contains("90% &lt;reads&gt;"));
        assert!(page.contains("<td>1000</td>") && page.contains("<td>250</td>"));
        // Three charts, each with one polyline per result.
        assert_eq!(page.matches("<svg").count(), 3);
        assert_eq!(page.matches("<polyline").count(), 6);
        assert!(!page.contains("no data"));
        assert!(!page.contains("http://") || page.matches("http://").count() == 3);
        assert!(!page.contains("<script"));
    }

    #[test]
    fn axis_tops_are_round() {
        assert_eq!(nice_ceil(411_466.0), 500_000.0);
        assert_eq!(nice_ceil(1.0), 1.0);
        assert_eq!(nice_ceil(2.1), 2.5);
        assert_eq!(nice_ceil(0.03), 0.04);
    }

    #[test]
    fn percentile_axis_spreads_the_nines() {
        let d1 = pct_x(99.0) - pct_x(90.0);
        let d2 = pct_x(99.9) - pct_x(99.0);
        assert!((d1 - 1.0).abs() < 1e-9 && (d2 - 1.0).abs() < 1e-9);
        assert_eq!(pct_x(0.0), 0.0);
        assert!(pct_x(100.0).is_finite());
    }

    #[test]
    fn empty_series_say_no_data() {
        let mut e = entry("x", 1.0);
        e.v["seconds"] = Value::Array(vec![]);
        let page = html("t", "", &[(String::new(), vec![e])]);
        assert!(page.contains("no data"));
    }
}
