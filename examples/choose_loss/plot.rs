//! SVG figures with plotters' SVG backend. Text is written as SVG `<text>`
//! for the viewer to render, so no system font library is involved.

use std::path::Path;

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

/// One named line.
pub struct Series<'a> {
    /// Its legend entry.
    pub name: &'a str,
    /// Its points.
    pub points: Vec<(f64, f64)>,
}

/// A panel: a title, axis names, ranges and lines.
pub struct Panel<'a> {
    /// Caption above the panel.
    pub title: String,
    /// The x axis's name.
    pub x_desc: &'a str,
    /// The y axis's name.
    pub y_desc: &'a str,
    /// x range.
    pub x: (f64, f64),
    /// y range.
    pub y: (f64, f64),
    /// The lines, coloured by their position (the same position is the
    /// same colour in every panel and in the legend).
    pub series: Vec<Series<'a>>,
}

type PlotResult = Result<(), Box<dyn std::error::Error>>;

type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A captioned panel with room for the axes' labels, over `x` by `y`.
fn chart_on<'a, DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    x: (f64, f64),
    y: (f64, f64),
) -> Result<Chart<'a, DB>, Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    Ok(ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(x.0..x.1, y.0..y.1)?)
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    panel: &Panel<'_>,
) -> PlotResult
where
    DB::ErrorType: 'static,
{
    let mut chart = chart_on(area, &panel.title, panel.x, panel.y)?;
    chart
        .configure_mesh()
        .x_desc(panel.x_desc)
        .y_desc(panel.y_desc)
        .light_line_style(WHITE.mix(0.0))
        .x_label_formatter(&|x| tick(*x))
        .y_label_formatter(&|y| tick(*y))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .draw()?;
    for (i, s) in panel.series.iter().enumerate() {
        let points = s.points.iter().copied();
        if dashed(i) {
            chart.draw_series(DashedLineSeries::new(points, 7, 5, style(i)))?;
        } else {
            chart.draw_series(LineSeries::new(points, style(i)))?;
        }
    }
    Ok(())
}

/// A tick label: at most two decimals, without trailing zeros.
pub fn tick(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// matplotlib's "tab10" colours.
const TAB10: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];

/// Series 0 (the baseline) is thick black; then the ten tab10 colours,
/// solid, then again dashed.
fn style(i: usize) -> ShapeStyle {
    if i == 0 {
        return ShapeStyle::from(BLACK).stroke_width(3);
    }
    let (r, g, b) = TAB10[(i - 1) % TAB10.len()];
    ShapeStyle::from(RGBColor(r, g, b)).stroke_width(2)
}

fn dashed(i: usize) -> bool {
    i > TAB10.len()
}

/// The legend strip: one coloured line and name per series.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    names: &[&str],
) -> PlotResult
where
    DB::ErrorType: 'static,
{
    let top = 60;
    for (i, name) in names.iter().enumerate() {
        let y = top + 26 * i as i32;
        if dashed(i) {
            area.draw(&PathElement::new(vec![(8, y), (20, y)], style(i)))?;
            area.draw(&PathElement::new(vec![(28, y), (40, y)], style(i)))?;
        } else {
            area.draw(&PathElement::new(vec![(8, y), (40, y)], style(i)))?;
        }
        area.draw(&Text::new(
            name.to_string(),
            (48, y - 8),
            ("sans-serif", 16).into_font(),
        ))?;
    }
    Ok(())
}

/// Writes panels, row by row in a grid of `cols` columns, into one SVG
/// file, with the series' names in a legend strip on the right.
pub fn panels(
    path: &Path,
    panels: &[Panel<'_>],
    cols: usize,
    panel_size: (u32, u32),
) -> PlotResult {
    const LEGEND_WIDTH: u32 = 230;
    let cols = cols.clamp(1, panels.len().max(1));
    let rows = panels.len().div_ceil(cols);
    let grid_width = panel_size.0 * cols as u32;
    let size = (grid_width + LEGEND_WIDTH, panel_size.1 * rows as u32);
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE)?;
    let (grid, legend) = root.split_horizontally(grid_width);
    if let Some(first) = panels.first() {
        let names: Vec<&str> = first.series.iter().map(|s| s.name).collect();
        draw_legend(&legend, &names)?;
    }
    let areas = grid.split_evenly((rows, cols));
    for (area, panel) in areas.iter().zip(panels) {
        draw_panel(area, panel)?;
    }
    root.present()?;
    Ok(())
}

/// Bars with an error bar each: `value` and the half-length of its
/// error bar.
pub struct BarSeries<'a> {
    /// Its legend entry.
    pub name: &'a str,
    /// One `(value, error)` per group.
    pub bars: Vec<(f64, f64)>,
}

/// A panel of grouped bars: one group per name of `groups`, in each group
/// one bar per series (coloured like the lines of [`Panel`]).
pub struct BarPanel<'a> {
    /// Caption above the panel.
    pub title: String,
    /// The groups' names, under the x axis.
    pub groups: Vec<&'a str>,
    /// The y axis's name.
    pub y_desc: &'a str,
    /// y range.
    pub y: (f64, f64),
    /// The bars.
    pub series: Vec<BarSeries<'a>>,
}

/// Where bar `i` of `n` stands in group `g`: `(left, right)` on the x axis,
/// a group being one unit wide with a fifth of it left free as the gap.
fn bar_span(g: usize, i: usize, n: usize) -> (f64, f64) {
    let width = 0.8 / n.max(1) as f64;
    let left = g as f64 + 0.1 + i as f64 * width;
    (left, left + width)
}

fn draw_bar_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    panel: &BarPanel<'_>,
) -> PlotResult
where
    DB::ErrorType: 'static,
{
    let groups = panel.groups.len();
    let mut chart = chart_on(area, &panel.title, (0.0, groups as f64), panel.y)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc(panel.y_desc)
        .light_line_style(WHITE.mix(0.0))
        .y_label_formatter(&|y| tick(*y))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .draw()?;
    let n = panel.series.len();
    for (i, s) in panel.series.iter().enumerate() {
        let colour = style(i).color;
        for (g, &(value, err)) in s.bars.iter().enumerate() {
            let (l, r) = bar_span(g, i, n);
            let top = value.clamp(panel.y.0, panel.y.1);
            chart.draw_series(std::iter::once(Rectangle::new(
                [(l, panel.y.0), (r, top)],
                colour.filled(),
            )))?;
            let mid = (l + r) / 2.0;
            let (lo, hi) = ((value - err).max(panel.y.0), (value + err).min(panel.y.1));
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(mid, lo), (mid, hi)],
                BLACK.stroke_width(1),
            )))?;
        }
    }
    // The groups' names, centred under each group, below the axis.
    for (g, name) in panel.groups.iter().enumerate() {
        let at = (g as f64 + 0.5, panel.y.0);
        let label = EmptyElement::at(at)
            + Text::new(
                name.to_string(),
                (-(4 * name.chars().count() as i32), 8),
                ("sans-serif", 15).into_font(),
            );
        chart.draw_series(std::iter::once(label))?;
    }
    Ok(())
}

/// Writes bar panels side by side into one SVG file, with the series'
/// names in a legend strip on the right.
pub fn bar_panels(path: &Path, panels: &[BarPanel<'_>], panel_size: (u32, u32)) -> PlotResult {
    const LEGEND_WIDTH: u32 = 230;
    let cols = panels.len().max(1);
    let grid_width = panel_size.0 * cols as u32;
    let root = SVGBackend::new(path, (grid_width + LEGEND_WIDTH, panel_size.1)).into_drawing_area();
    root.fill(&WHITE)?;
    let (grid, legend) = root.split_horizontally(grid_width);
    if let Some(first) = panels.first() {
        let names: Vec<&str> = first.series.iter().map(|s| s.name).collect();
        draw_legend(&legend, &names)?;
    }
    for (area, panel) in grid.split_evenly((1, cols)).iter().zip(panels) {
        draw_bar_panel(area, panel)?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_short() {
        assert_eq!(tick(0.30000000000000004), "0.3");
        assert_eq!(tick(40.0), "40");
        assert_eq!(tick(0.125), "0.12");
        assert_eq!(tick(-0.0001), "0");
    }

    #[test]
    fn bars_of_a_group_sit_side_by_side_inside_it() {
        for n in 1..6 {
            for g in 0..3 {
                let spans: Vec<(f64, f64)> = (0..n).map(|i| bar_span(g, i, n)).collect();
                assert!(spans[0].0 > g as f64 && spans[n - 1].1 < (g + 1) as f64);
                assert!(spans.windows(2).all(|w| (w[0].1 - w[1].0).abs() < 1e-12));
            }
        }
    }

    #[test]
    fn styles_stay_distinct_for_twenty_series() {
        let keys: Vec<String> = (0..21)
            .map(|i| format!("{:?}{}", style(i), dashed(i)))
            .collect();
        let mut unique = keys.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), keys.len());
    }
}
