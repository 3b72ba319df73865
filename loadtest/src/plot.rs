//! The ramp's results as an SVG: added latency and server CPU against the
//! number of participants, one line per SFU and scenario.

use std::path::Path;

use plotters::prelude::*;

use crate::stats::Summary;

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// What one chart shows of a run.
type Metric = fn(&Summary) -> f64;

/// Draws p99 latency (top) and server CPU (bottom) against participants.
pub fn draw(results: &[Summary], path: &Path) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (900, 700)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(350);
    let mut series: Vec<(String, Vec<&Summary>)> = Vec::new();
    for s in results {
        let name = format!("{} {}", s.sfu, s.scenario);
        match series.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => v.push(s),
            None => series.push((name, vec![s])),
        }
    }
    let max_n = results.iter().map(|s| s.participants).max().unwrap_or(1) as f64;
    let latency: Metric = |s| s.latency_p99_ms;
    let cpu: Metric = |s| s.server_cpu_percent;
    let charts = [
        (&top, "p99 one-way latency (ms)", latency),
        (&bottom, "server CPU (% of one core)", cpu),
    ];
    for (area, label, value) in charts {
        let max_y = results.iter().map(value).fold(1.0, f64::max) * 1.1;
        let mut chart = ChartBuilder::on(area)
            .margin(15)
            .x_label_area_size(35)
            .y_label_area_size(55)
            .build_cartesian_2d(0f64..max_n * 1.05, 0f64..max_y)?;
        chart
            .configure_mesh()
            .x_desc("participants")
            .y_desc(label)
            .draw()?;
        for (i, (name, points)) in series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let data: Vec<(f64, f64)> = points
                .iter()
                .map(|s| (s.participants as f64, value(s)))
                .collect();
            chart
                .draw_series(LineSeries::new(data.clone(), color.stroke_width(2)))?
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            chart.draw_series(data.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}
