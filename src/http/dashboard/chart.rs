//! Charts as inline SVG, drawn on the server: spend over time as stacked bars (with the
//! spike window marked) and sparklines for table rows. Money arrives as exact nano-USD;
//! f64 is used only for geometry.

use super::format;
use maud::{html, Markup};

/// Series colours: a restrained, colour-blind-friendly set; "other" is grey.
pub const PALETTE: &[&str] = &[
    "#3867a8", "#e0913a", "#3f9a8c", "#c0506e", "#7a68b3", "#8c8c3a", "#5d9bd5", "#b07a52",
];
pub const OTHER: &str = "#b9bec7";

pub fn color(i: usize, key: &str) -> &'static str {
    if key == "other" {
        OTHER
    } else {
        PALETTE[i % PALETTE.len()]
    }
}

/// Cost per bucket, split into series (bottom first), with the totals.
#[derive(Debug, Clone, Default)]
pub struct Stack {
    pub starts: Vec<i64>,
    pub step_ms: i64,
    pub series: Vec<(String, Vec<i64>)>,
    pub totals: Vec<i64>,
    pub requests: Vec<u64>,
}

/// A run of buckets far above the window's typical bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spike {
    /// First bucket and one past the last.
    pub start: usize,
    pub end: usize,
    /// The median bucket (nano-USD) the run is compared with.
    pub median: i64,
    /// Cost of the run (nano-USD).
    pub cost: i64,
}

/// The contiguous run of spiking buckets with the largest cost. A bucket spikes by the
/// same rule as the hourly_spend_spike alert (`RuleSettings::spike_times`: its calls at
/// least the rule's minimum, its cost at least `threshold` times the median bucket).
/// The median is over all buckets, or over the non-empty ones when most are empty
/// (sparse traffic); a window of fewer than six buckets has no spike.
pub fn spike(totals: &[i64], requests: &[u64], rule: &crate::alert::RuleSettings) -> Option<Spike> {
    if totals.len() < 6 {
        return None;
    }
    let median_of = |v: &mut Vec<i64>| -> i64 {
        v.sort_unstable();
        v[v.len() / 2]
    };
    let mut all = totals.to_vec();
    let mut median = median_of(&mut all);
    if median == 0 {
        let mut nonzero: Vec<i64> = totals.iter().copied().filter(|c| *c > 0).collect();
        if nonzero.len() < 3 {
            return None;
        }
        median = median_of(&mut nonzero);
    }
    let spikes = |i: usize| {
        let n = requests.get(i).copied().unwrap_or(0);
        rule.spike_times(n, totals[i].into(), median.into())
            .is_some()
    };
    let mut best: Option<Spike> = None;
    let mut i = 0;
    while i < totals.len() {
        if spikes(i) {
            let start = i;
            let mut cost = 0i64;
            while i < totals.len() && spikes(i) {
                cost = cost.saturating_add(totals[i]);
                i += 1;
            }
            if best.is_none_or(|b| cost > b.cost) {
                best = Some(Spike {
                    start,
                    end: i,
                    median,
                    cost,
                });
            }
        } else {
            i += 1;
        }
    }
    best
}

/// A "nice" axis step (1, 2, 2.5 or 5 times a power of ten) for about `ticks` ticks.
fn nice_step(max: f64, ticks: usize) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let raw = max / ticks as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let nice = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 2.5 {
        2.5
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

const W: f64 = 960.0;
const H: f64 = 260.0;
const LEFT: f64 = 58.0;
const RIGHT: f64 = 6.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 26.0;

fn f(v: f64) -> String {
    format!("{v:.1}")
}

/// The bucket's label in a tooltip: `Nov 23 14:00–15:00 UTC` or `Nov 23 (UTC day)`.
pub fn bucket_label(start: i64, step: i64) -> String {
    if step >= super::view::DAY_MS {
        format!("{} (UTC day)", format::day(start))
    } else {
        let end = format::time(start + step);
        format!(
            "{}–{} UTC",
            format::time(start),
            end.rsplit(' ').next().unwrap_or("")
        )
    }
}

/// A deploy note on a time chart: when, and the words its tooltip shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    pub at_ms: i64,
    pub label: String,
}

/// Stacked bars of cost per bucket. `spike_href` makes the marked window a link; each
/// deploy marker inside the chart's buckets is a dashed line, its note the tooltip.
pub fn stacked(
    stack: &Stack,
    spike: Option<&Spike>,
    spike_href: Option<&str>,
    markers: &[Marker],
) -> Markup {
    let n = stack.starts.len().max(1);
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let max_usd = stack.totals.iter().copied().max().unwrap_or(0) as f64 / 1e9;
    let step = nice_step(max_usd, 4);
    let top_usd = if max_usd <= 0.0 {
        step * 4.0
    } else {
        (max_usd / step).ceil() * step
    };
    let y = |usd: f64| TOP + plot_h - usd / top_usd * plot_h;
    let bw = plot_w / n as f64;
    let gap = if bw >= 6.0 {
        bw * 0.18
    } else if bw >= 3.0 {
        0.6
    } else {
        0.0
    };
    let x = |i: usize| LEFT + i as f64 * bw;
    let ticks: Vec<f64> = (0..)
        .map(|k| k as f64 * step)
        .take_while(|v| *v <= top_usd + step * 1e-6)
        .collect();
    let labels = x_labels(stack);
    // Per bucket, each non-empty segment bottom-up: (top y, height, colour).
    let columns: Vec<Vec<(f64, f64, &str)>> = (0..stack.starts.len())
        .map(|i| {
            let mut acc = 0f64;
            let mut out = Vec::new();
            for (k, (key, values)) in stack.series.iter().enumerate() {
                let v = values[i] as f64 / 1e9;
                if v > 0.0 {
                    let (y0, y1) = (y(acc), y(acc + v));
                    out.push((y1, (y0 - y1).max(0.6), color(k, key)));
                    acc += v;
                }
            }
            out
        })
        .collect();
    html! {
        svg class="chart" viewBox=(format!("0 0 {W} {H}")) preserveAspectRatio="none"
            role="img" aria-label="Spend over time, stacked by group" {
            @if let Some(s) = spike {
                @let band = html! {
                    rect class="spike-band" x=(f(x(s.start))) y=(f(TOP - 10.0))
                        width=(f(x(s.end) - x(s.start))) height=(f(plot_h + 10.0)) {}
                    text class="spike-label" x=(f((x(s.start) + x(s.end)) / 2.0)) y=(f(TOP - 1.0))
                        text-anchor="middle" { "spike" }
                };
                @if let Some(href) = spike_href {
                    a href=(href) { (band) }
                } @else { (band) }
            }
            @for t in &ticks {
                line class="grid" x1=(f(LEFT)) x2=(f(W - RIGHT)) y1=(f(y(*t))) y2=(f(y(*t))) {}
                text class="axis" x=(f(LEFT - 8.0)) y=(f(y(*t) + 4.0)) text-anchor="end" {
                    (format::usd_axis(*t, step))
                }
            }
            @for (i, label) in &labels {
                line class="tick" x1=(f(x(*i))) x2=(f(x(*i))) y1=(f(TOP + plot_h)) y2=(f(TOP + plot_h + 4.0)) {}
                text class="axis" x=(f(x(*i) + 2.0)) y=(f(H - 8.0)) { (label) }
            }
            @for (i, segments) in columns.iter().enumerate() {
                g class="col" data-tip=(tooltip(stack, i)) {
                    rect class="hit" x=(f(x(i))) y=(f(TOP)) width=(f(bw)) height=(f(plot_h)) {}
                    @for (y1, height, fill) in segments {
                        rect x=(f(x(i) + gap / 2.0)) y=(f(*y1)) width=(f((bw - gap).max(0.5)))
                            height=(f(*height)) fill=(fill) {}
                    }
                }
            }
            line class="baseline" x1=(f(LEFT)) x2=(f(W - RIGHT)) y1=(f(TOP + plot_h)) y2=(f(TOP + plot_h)) {}
            @for (mx, label) in marker_xs(stack, markers, bw) {
                g class="deploy" data-tip=(label) {
                    title { (label) }
                    line x1=(f(mx)) x2=(f(mx)) y1=(f(TOP - 6.0)) y2=(f(TOP + plot_h)) {}
                    rect class="hit" x=(f(mx - 4.0)) y=(f(TOP - 10.0)) width="8" height=(f(plot_h + 10.0)) {}
                    text class="deploy-label" x=(f(mx + 3.0)) y=(f(TOP - 2.0)) { "deploy" }
                }
            }
        }
    }
}

/// Where each marker falls on the x axis (LEFT + buckets from the first start), for the
/// markers inside the chart's buckets.
fn marker_xs<'a>(stack: &Stack, markers: &'a [Marker], bw: f64) -> Vec<(f64, &'a str)> {
    let (Some(first), step) = (stack.starts.first(), stack.step_ms.max(1)) else {
        return Vec::new();
    };
    let end = first + step * stack.starts.len() as i64;
    markers
        .iter()
        .filter(|m| m.at_ms >= *first && m.at_ms < end)
        .map(|m| {
            let buckets = (m.at_ms - first) as f64 / step as f64;
            (LEFT + buckets * bw, m.label.as_str())
        })
        .collect()
}

fn tooltip(stack: &Stack, i: usize) -> String {
    let mut lines = vec![
        bucket_label(stack.starts[i], stack.step_ms),
        format!(
            "Total {} · {} requests",
            format::usd(crate::money::Usd(stack.totals[i])),
            format::int(stack.requests.get(i).copied().unwrap_or(0))
        ),
    ];
    let mut parts: Vec<(&str, i64)> = stack
        .series
        .iter()
        .map(|(k, v)| (k.as_str(), v[i]))
        .filter(|(_, v)| *v > 0)
        .collect();
    parts.sort_by_key(|p| std::cmp::Reverse(p.1));
    for (k, v) in parts {
        lines.push(format!("{k}: {}", format::usd(crate::money::Usd(v))));
    }
    lines.join("\n")
}

/// Where the x axis gets a label: midnights for hourly buckets (thinned to about ten),
/// every few hours in a one-day window, every few days for daily buckets.
fn x_labels(stack: &Stack) -> Vec<(usize, String)> {
    let n = stack.starts.len();
    let day = super::view::DAY_MS;
    if stack.step_ms < day {
        let midnights: Vec<usize> = (0..n).filter(|i| stack.starts[*i] % day == 0).collect();
        if midnights.len() >= 2 {
            let every = midnights.len().div_ceil(10);
            return midnights
                .iter()
                .step_by(every)
                .map(|i| (*i, format::day(stack.starts[*i])))
                .collect();
        }
        let every = n.div_ceil(8).max(1);
        return (0..n)
            .filter(|i| ((stack.starts[*i] / stack.step_ms) as usize).is_multiple_of(every))
            .map(|i| {
                let label = if stack.starts[i] % day == 0 {
                    format::day(stack.starts[i])
                } else {
                    format::time(stack.starts[i])
                        .rsplit(' ')
                        .next()
                        .unwrap_or("")
                        .to_string()
                };
                (i, label)
            })
            .collect();
    }
    let every = n.div_ceil(10).max(1);
    (0..n)
        .step_by(every)
        .map(|i| (i, format::day(stack.starts[i])))
        .collect()
}

/// A small line of values (nano-USD) for a table row.
pub fn sparkline(values: &[i64], title: &str) -> Markup {
    let (w, h, pad) = (120.0, 26.0, 2.0);
    let max = values.iter().copied().max().unwrap_or(0).max(1) as f64;
    let n = values.len();
    let px = |i: usize| {
        if n <= 1 {
            w / 2.0
        } else {
            pad + i as f64 * (w - 2.0 * pad) / (n - 1) as f64
        }
    };
    let py = |v: i64| pad + (h - 2.0 * pad) * (1.0 - v as f64 / max);
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{},{}", f(px(i)), f(py(*v))))
        .collect();
    let area = if n > 1 {
        format!(
            "{},{} {} {},{}",
            f(px(0)),
            f(h - pad),
            points.join(" "),
            f(px(n - 1)),
            f(h - pad)
        )
    } else {
        String::new()
    };
    html! {
        svg class="spark" viewBox=(format!("0 0 {w} {h}")) width="120" height="26" role="img" aria-label=(title) {
            title { (title) }
            @if n > 1 {
                polygon class="spark-area" points=(area) {}
                polyline class="spark-line" points=(points.join(" ")) {}
                circle class="spark-dot" cx=(f(px(n - 1))) cy=(f(py(values[n - 1]))) r="2" {}
            }
        }
    }
}

/// A budget's position as a bar: spent (coloured by state), reserved after it, the
/// threshold and limit ticks, and the forecast as a marker. Amounts in nano-USD.
#[derive(Debug, Clone)]
pub struct Gauge {
    pub id: i64,
    pub limit: i64,
    pub spent: i64,
    pub reserved: i64,
    pub forecast: i64,
    /// Percentages of the limit.
    pub thresholds: Vec<f64>,
    /// ok, warning or exceeded: the colour of the spent part.
    pub state: &'static str,
}

const GW: f64 = 400.0;

impl Gauge {
    /// The bar spans the limit, or spent + reserved when they are past it.
    fn scale(&self) -> f64 {
        self.limit.max(self.spent + self.reserved).max(1) as f64
    }

    /// Where an amount sits on the bar, in viewBox units.
    fn x(&self, nanos: i64) -> f64 {
        (nanos.max(0) as f64 / self.scale() * GW).min(GW)
    }
}

pub fn gauge(g: &Gauge) -> Markup {
    let (spent_w, reserved_w) = (g.x(g.spent), g.x(g.spent + g.reserved) - g.x(g.spent));
    let limit_x = g.x(g.limit);
    let fc = g.x(g.forecast);
    let title = format!(
        "Spent {} + reserved {} of {}; forecast {}",
        format::usd(crate::money::Usd(g.spent)),
        format::usd(crate::money::Usd(g.reserved)),
        format::usd(crate::money::Usd(g.limit)),
        format::usd(crate::money::Usd(g.forecast)),
    );
    let hatch = format!("hatch-{}", g.id);
    // Threshold ticks, each labelled unless too close to the limit's label or the
    // previous label to be read.
    let mut ticks: Vec<(f64, Option<String>)> = Vec::new();
    let mut last_label = f64::NEG_INFINITY;
    for t in g.thresholds.iter().filter(|t| **t < 100.0) {
        let x = g.x((g.limit as f64 * t / 100.0) as i64);
        let readable = (limit_x - x).abs() >= 24.0 && x - last_label >= 24.0;
        if readable {
            last_label = x;
        }
        ticks.push((x, readable.then(|| format!("{t}%"))));
    }
    html! {
        svg class={ "gauge " (g.state) } viewBox=(format!("0 0 {GW} 38")) role="img" aria-label=(title) {
            title { (title) }
            defs {
                pattern id=(hatch) width="5" height="5" patternUnits="userSpaceOnUse" patternTransform="rotate(45)" {
                    rect class="g-res-bg" width="5" height="5" {}
                    line class="g-res-line" x1="0" y1="0" x2="0" y2="5" {}
                }
            }
            rect class="g-track" x="0" y="10" width=(f(GW)) height="12" rx="3" {}
            rect class="g-spent" x="0" y="10" width=(f(spent_w)) height="12" rx="3" data-w=(f(spent_w)) {}
            @if reserved_w > 0.0 {
                rect class="g-res" x=(f(spent_w)) y="10" width=(f(reserved_w)) height="12" fill=(format!("url(#{hatch})")) data-w=(f(reserved_w)) {}
            }
            @for (x, label) in &ticks {
                line class="g-tick" x1=(f(*x)) x2=(f(*x)) y1="7" y2="25" {}
                @if let Some(label) = label {
                    text class="g-label" x=(f(*x)) y="35" text-anchor="middle" { (label) }
                }
            }
            line class="g-limit" x1=(f(limit_x)) x2=(f(limit_x)) y1="5" y2="27" {}
            text class="g-label" x=(f(limit_x)) y="35" text-anchor=(if limit_x > GW - 20.0 { "end" } else { "middle" }) { "limit" }
            path class="g-fc" d=(format!("M{} 1 L{} 1 L{} 8 Z", f(fc - 4.5), f(fc + 4.5), f(fc))) {}
        }
    }
}

/// A budget's period as a small chart: cumulative spend so far, the forecast line to the
/// period's end, the limit and the thresholds. Amounts in nano-USD, times in ms.
#[derive(Debug, Clone)]
pub struct Burn {
    pub start: i64,
    pub end: i64,
    pub now: i64,
    /// (time, cumulative spend) from the period's start, ascending.
    pub points: Vec<(i64, i64)>,
    pub spent: i64,
    pub forecast: i64,
    pub limit: i64,
    pub thresholds: Vec<f64>,
    pub exhaustion: Option<i64>,
    /// The axis labels of the period's start and end (in the budget's time zone).
    pub start_label: String,
    pub end_label: String,
}

const BW: f64 = 520.0;
const BH: f64 = 170.0;
const BL: f64 = 52.0;
const BR: f64 = 92.0;
const BT: f64 = 14.0;
const BB: f64 = 22.0;

pub fn burn(b: &Burn) -> Markup {
    let plot_w = BW - BL - BR;
    let plot_h = BH - BT - BB;
    let span = (b.end - b.start).max(1) as f64;
    let x = |t: i64| BL + ((t.clamp(b.start, b.end) - b.start) as f64 / span) * plot_w;
    let max = b.limit.max(b.forecast).max(b.spent) as f64 / 1e9;
    let step = nice_step(max, 3);
    let top = if max <= 0.0 {
        step * 3.0
    } else {
        (max / step).ceil() * step
    };
    let y = |nanos: i64| BT + plot_h - (nanos as f64 / 1e9) / top * plot_h;
    let ticks: Vec<f64> = (0..)
        .map(|k| k as f64 * step)
        .take_while(|v| *v <= top + step * 1e-6)
        .collect();
    let line: Vec<String> = b
        .points
        .iter()
        .map(|(t, v)| format!("{},{}", f(x(*t)), f(y(*v))))
        .collect();
    let area = match (b.points.first(), b.points.last()) {
        (Some(first), Some(last)) => format!(
            "{},{} {} {},{}",
            f(x(first.0)),
            f(y(0)),
            line.join(" "),
            f(x(last.0)),
            f(y(0))
        ),
        _ => String::new(),
    };
    let now = b.now.min(b.end);
    // Keep the forecast's label clear of the limit's.
    let (limit_y, fc_y) = (y(b.limit), y(b.forecast));
    let fc_label_y = if (fc_y - limit_y).abs() < 12.0 {
        if fc_y >= limit_y {
            limit_y + 12.0
        } else {
            limit_y - 12.0
        }
    } else {
        fc_y
    };
    // The labels at the right: the limit's and the forecast's first, then each
    // threshold's where it does not overlap them.
    let mut taken = vec![limit_y];
    if b.now < b.end {
        taken.push(fc_label_y);
    }
    let thresholds: Vec<(f64, Option<String>)> = b
        .thresholds
        .iter()
        .filter(|t| **t < 100.0)
        .map(|t| {
            let ty = y((b.limit as f64 * t / 100.0) as i64);
            let free = taken.iter().all(|other| (other - ty).abs() >= 11.0);
            if free {
                taken.push(ty);
            }
            (ty, free.then(|| format!("{t}%")))
        })
        .collect();
    html! {
        svg class="burn" viewBox=(format!("0 0 {BW} {BH}")) role="img"
            aria-label="Cumulative spend this period, the forecast to its end and the limit" {
            @for t in &ticks {
                line class="grid" x1=(f(BL)) x2=(f(BW - BR)) y1=(f(BT + plot_h - t / top * plot_h)) y2=(f(BT + plot_h - t / top * plot_h)) {}
                text class="axis" x=(f(BL - 6.0)) y=(f(BT + plot_h - t / top * plot_h + 3.5)) text-anchor="end" { (format::usd_axis(*t, step)) }
            }
            @for (ty, label) in &thresholds {
                line class="b-threshold" x1=(f(BL)) x2=(f(BW - BR)) y1=(f(*ty)) y2=(f(*ty)) {}
                @if let Some(label) = label {
                    text class="axis" x=(f(BW - BR + 4.0)) y=(f(ty + 3.5)) { (label) }
                }
            }
            line class="b-limit" x1=(f(BL)) x2=(f(BW - BR)) y1=(f(limit_y)) y2=(f(limit_y)) {}
            text class="b-limit-label" x=(f(BW - BR + 4.0)) y=(f(limit_y + 3.5)) { "limit " (format::usd(crate::money::Usd(b.limit))) }
            @if !area.is_empty() {
                polygon class="b-area" points=(area) {}
                polyline class="b-line" points=(line.join(" ")) {}
            }
            @if b.now < b.end {
                line class="b-now" x1=(f(x(now))) x2=(f(x(now))) y1=(f(BT - 4.0)) y2=(f(BT + plot_h)) {}
                text class="axis" x=(f(x(now))) y=(f(BT - 6.0)) text-anchor="middle" { "now" }
                line class="b-forecast" x1=(f(x(now))) y1=(f(y(b.spent))) x2=(f(x(b.end))) y2=(f(fc_y)) {}
                circle class="b-forecast-dot" cx=(f(x(b.end))) cy=(f(fc_y)) r="3" {}
                text class="b-forecast-label" x=(f(BW - BR + 4.0)) y=(f(fc_label_y + 3.5)) { "forecast " (format::usd(crate::money::Usd(b.forecast))) }
            }
            @if let Some(at) = b.exhaustion {
                circle class="b-exhaust" cx=(f(x(at))) cy=(f(limit_y)) r="3.5" {
                    title { "Projected to reach the limit at " (format::time(at)) " UTC" }
                }
            }
            line class="baseline" x1=(f(BL)) x2=(f(BW - BR)) y1=(f(BT + plot_h)) y2=(f(BT + plot_h)) {}
            text class="axis" x=(f(BL)) y=(f(BH - 6.0)) { (b.start_label) }
            text class="axis" x=(f(BW - BR)) y=(f(BH - 6.0)) text-anchor="end" { (b.end_label) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spike_is_the_biggest_run_above_three_medians() {
        let rule = crate::alert::RuleKind::HourlySpendSpike.defaults();
        let spike = |t: &[i64]| spike(t, &vec![50; t.len()], &rule);
        let mut t = vec![100; 48];
        t[10] = 250;
        t[20] = 400;
        t[21] = 900;
        t[22] = 500;
        t[30] = 350;
        let s = spike(&t).unwrap();
        assert_eq!((s.start, s.end, s.median, s.cost), (20, 23, 100, 1800));
        assert_eq!(spike(&[100; 48]), None);
        assert_eq!(spike(&[0, 0, 0, 0, 0, 0, 0, 5]), None);
        let mut sparse = vec![0; 48];
        for i in [1, 5, 9, 13] {
            sparse[i] = 100;
        }
        sparse[30] = 1000;
        assert_eq!(spike(&sparse).map(|s| (s.start, s.end)), Some((30, 31)));
        assert_eq!(spike(&[1, 100, 1, 1, 1]), None);
    }

    #[test]
    fn no_spike_on_a_handful_of_calls_as_for_the_alert() {
        // Six calls over a day: one hour holds three of them and 6x the typical cost.
        // The alert needs its minimum of calls; so does the marker.
        let rule = crate::alert::RuleKind::HourlySpendSpike.defaults();
        let mut totals = vec![0i64; 24];
        let mut requests = vec![0u64; 24];
        for (i, cost, n) in [(2, 100, 1), (5, 100, 1), (9, 100, 1), (14, 600, 3)] {
            totals[i] = cost;
            requests[i] = n;
        }
        assert_eq!(spike(&totals, &requests, &rule), None);
        // The same shape with enough calls per hour is a spike.
        let many: Vec<u64> = requests.iter().map(|n| n * rule.min_requests).collect();
        assert_eq!(
            spike(&totals, &many, &rule).map(|s| (s.start, s.end)),
            Some((14, 15))
        );
    }

    #[test]
    fn the_gauge_spans_the_limit_or_what_went_past_it() {
        let g = Gauge {
            id: 1,
            limit: 10_000_000_000,
            spent: 2_500_000_000,
            reserved: 500_000_000,
            forecast: 12_000_000_000,
            thresholds: vec![50.0, 80.0],
            state: "ok",
        };
        assert_eq!((g.x(g.spent), g.x(g.spent + g.reserved)), (100.0, 120.0));
        assert_eq!(
            g.x(g.forecast),
            400.0,
            "a forecast past the bar sits at its end"
        );
        let svg = gauge(&g).into_string();
        assert!(svg.contains(r#"data-w="100.0""#) && svg.contains(r#"data-w="20.0""#));
        assert!(svg.contains(">50%<") && svg.contains(">80%<"));
        let crowded = Gauge {
            thresholds: vec![50.0, 95.0, 100.0],
            ..g.clone()
        };
        let svg = gauge(&crowded).into_string();
        assert!(
            svg.contains(">50%<") && !svg.contains(">95%<"),
            "95% is too close to the limit to label"
        );
        assert_eq!(
            svg.matches(r#"class="g-tick""#).count(),
            2,
            "100% is the limit itself"
        );
        let over = Gauge {
            spent: 15_000_000_000,
            reserved: 5_000_000_000,
            state: "exceeded",
            ..g
        };
        assert_eq!((over.x(over.limit), over.x(over.spent)), (200.0, 300.0));
    }

    #[test]
    fn steps_are_nice() {
        assert_eq!(nice_step(11.3, 4), 5.0);
        assert_eq!(nice_step(0.9, 4), 0.25);
        assert_eq!(nice_step(400.0, 4), 100.0);
    }
}
