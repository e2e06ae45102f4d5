//! SVG figures with plotters' SVG backend. Text is written as SVG `<text>`
//! for the viewer to render, so no system font library is involved.

use std::path::Path;

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

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    panel: &Panel<'_>,
) -> PlotResult
where
    DB::ErrorType: 'static,
{
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(panel.x.0..panel.x.1, panel.y.0..panel.y.1)?;
    chart
        .configure_mesh()
        .x_desc(panel.x_desc)
        .y_desc(panel.y_desc)
        .light_line_style(WHITE.mix(0.0))
        .x_label_formatter(&|x| format!("{x}"))
        .y_label_formatter(&|y| format!("{y:.1}"))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .draw()?;
    for (i, s) in panel.series.iter().enumerate() {
        chart.draw_series(LineSeries::new(s.points.iter().copied(), style(i)))?;
    }
    Ok(())
}

fn style(i: usize) -> ShapeStyle {
    ShapeStyle::from(Palette99::pick(i).to_rgba()).stroke_width(2)
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
        area.draw(&PathElement::new(vec![(8, y), (40, y)], style(i)))?;
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
