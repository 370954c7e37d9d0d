//! `--plot FILE.svg`: speedup against workers for every scaling case, one panel each.

use std::path::Path;

use plotters::prelude::*;

use super::report::{CaseResult, Scaling};

const PANEL_WIDTH: u32 = 900;
const PANEL_HEIGHT: u32 = 520;

/// Colours of the measured series, in order (braid, Python threads, Python processes, ...).
const MEASURED: [RGBColor; 5] = [
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
];

/// Draws the measured speedup of braid and each Python variant, the ideal S = p, and the
/// Amdahl and Gustafson curves fitted to braid, for every scaling case in `results`.
///
/// # Errors
/// The drawing library's message (the file cannot be written, ...).
pub(crate) fn draw(path: &Path, results: &[CaseResult]) -> Result<(), String> {
    let panels: Vec<(&CaseResult, &Scaling)> = results
        .iter()
        .filter_map(|r| r.scaling.as_ref().map(|s| (r, s)))
        .collect();
    if panels.is_empty() {
        return Err("no scaling case to draw".into());
    }
    let height = PANEL_HEIGHT * panels.len() as u32;
    let root = SVGBackend::new(path, (PANEL_WIDTH, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let areas = root.split_evenly((panels.len(), 1));
    for (area, (result, scaling)) in areas.iter().zip(&panels) {
        panel(area, result, scaling).map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

fn panel(
    area: &Area<'_>,
    result: &CaseResult,
    scaling: &Scaling,
) -> Result<(), DrawingAreaErrorKind<<SVGBackend<'static> as DrawingBackend>::ErrorType>> {
    let max_p = scaling.workers.last().copied().unwrap_or(1).max(2) as f64;
    let highest = scaling
        .series
        .iter()
        .flat_map(|s| s.speedup.iter().chain(&s.amdahl).chain(&s.gustafson))
        .flatten()
        .copied()
        .fold(max_p, f64::max);
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!(
                "{}/{}: speedup S = T1/Tp against workers p",
                result.suite, result.name
            ),
            ("sans-serif", 26),
        )
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(64)
        .build_cartesian_2d(0.8..max_p + 0.2, 0.0..highest * 1.1)?;
    chart
        .configure_mesh()
        .x_desc("workers p")
        .y_desc("speedup S")
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 17))
        .x_labels(scaling.workers.len().min(16))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()?;

    let workers = &scaling.workers;
    let points = |values: &[Option<f64>]| -> Vec<(f64, f64)> {
        workers
            .iter()
            .zip(values)
            .filter_map(|(p, s)| s.map(|s| (*p as f64, s)))
            .collect()
    };

    let grey = RGBColor(0x80, 0x80, 0x80);
    chart
        .draw_series(LineSeries::new(
            [(1.0, 1.0), (max_p, max_p)],
            grey.stroke_width(1),
        ))?
        .label("ideal S = p")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], grey));

    for (i, series) in scaling.series.iter().enumerate() {
        let colour = MEASURED[i % MEASURED.len()];
        chart
            .draw_series(
                LineSeries::new(points(&series.speedup), colour.stroke_width(2)).point_size(4),
            )?
            .label(format!("{} (measured)", series.name))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2)));
    }

    if let Some(braid) = scaling.series.first() {
        let f = braid.serial_fraction.unwrap_or(f64::NAN);
        let amdahl = RGBColor(0xff, 0x7f, 0x0e);
        chart
            .draw_series(DashedLineSeries::new(
                points(&braid.amdahl),
                8,
                5,
                amdahl.stroke_width(1),
            ))?
            .label(format!("Amdahl, f = {f:.3} ({})", braid.name))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], amdahl));
        let gustafson = RGBColor(0x17, 0xbe, 0xcf);
        chart
            .draw_series(DashedLineSeries::new(
                points(&braid.gustafson),
                3,
                3,
                gustafson.stroke_width(1),
            ))?
            .label(format!("Gustafson, f = {f:.3} ({})", braid.name))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], gustafson));
    }

    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::report::Series;

    #[test]
    fn draws_an_svg_with_every_series() {
        let workers = vec![1, 2, 3, 4];
        let result = CaseResult {
            suite: "threads".into(),
            name: "cpu_scaling".into(),
            unit: "s".into(),
            braid: 0.3,
            python: Some(1.0),
            ratio: Some(3.3),
            note: None,
            scaling: Some(Scaling {
                series: vec![
                    Series::from_times("braid", &workers, vec![1.0, 0.5, 0.36, 0.3]),
                    Series::from_times("python threads", &workers, vec![1.0, 1.0, 1.0, 1.0]),
                    Series::from_times("python processes", &workers, vec![1.0, 0.6, 0.45, 0.4]),
                ],
                workers,
            }),
        };
        let dir = std::env::temp_dir().join(format!("braid-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("scaling.svg");
        draw(&path, &[result.clone(), result]).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
        for label in [
            "braid (measured)",
            "python threads",
            "python processes",
            "ideal",
            "Amdahl",
            "Gustafson",
        ] {
            assert!(svg.contains(label), "no {label} in the SVG");
        }
        assert!(draw(Path::new("unused.svg"), &[]).is_err());
    }
}
