/* gridwatch console: the summary page's bar charts, drawn by the vendored uPlot
 * (/static/vendor/uplot/, no CDN). Both functions take a container, category labels and
 * series of plain numbers, so the page does not depend on uPlot's API: another drawing
 * library (or plain SVG) can replace it here alone.
 *
 *   gwCharts.stackedBars(el, {labels, series: [{label, color, values}]}) — one bar per label,
 *     the series stacked in order (the first at the bottom);
 *   gwCharts.groupedBars(el, {labels, series: [{label, color, values}]}) — two series side by
 *     side per label (null values leave a gap).
 *
 * Each returns {resize(width)}. The canvases are sized to the container; the print stylesheet
 * scales them to the page width.
 */
(function () {
  "use strict";

  const AXIS = "#7d8fa3";
  const GRID = "rgba(125, 143, 163, 0.25)";
  const FONT = '12px system-ui, "Noto Sans", "Noto Sans CJK SC", sans-serif';
  const PALETTE = ["#3d8bfd", "#f5b400", "#34c759", "#ff4d4f", "#b36bff", "#20c5c5", "#ff8a3d", "#9aa7b4"];

  function axes(labels, yFmt) {
    return [
      {
        stroke: AXIS, font: FONT, grid: { show: false }, ticks: { stroke: GRID },
        splits: () => labels.map((_, i) => i),
        values: (u, splits) => splits.map((i) => labels[i] === undefined ? "" : labels[i]),
      },
      {
        stroke: AXIS, font: FONT, grid: { stroke: GRID }, ticks: { stroke: GRID }, size: 56,
        values: (u, splits) => splits.map(yFmt || ((v) => String(v))),
      },
    ];
  }

  function build(el, labels, series, data, opts) {
    el.replaceChildren();
    const width = Math.max(320, Math.floor(el.clientWidth || 640));
    const plot = new window.uPlot({
      width: width,
      height: opts.height || 220,
      legend: { show: false },
      cursor: { show: false },
      select: { show: false },
      scales: {
        x: { time: false, range: [-0.5, labels.length - 0.5] },
        y: { range: (u, min, max) => [0, Math.max(opts.minMax || 1, max * 1.1)] },
      },
      axes: axes(labels, opts.yFmt),
      series: [{}].concat(series),
    }, [labels.map((_, i) => i)].concat(data), el);
    return { plot: plot, resize: (w) => plot.setSize({ width: w, height: opts.height || 220 }) };
  }

  function stackedBars(el, spec, opts) {
    opts = Object.assign({ minMax: 2, yFmt: (v) => Number.isInteger(v) ? String(v) : "" }, opts || {});
    const n = spec.labels.length;
    const cum = [];
    let running = new Array(n).fill(0);
    for (const s of spec.series) {
      running = running.map((v, i) => v + (s.values[i] || 0));
      cum.push(running.slice());
    }
    // drawn top-down (the tallest first), each stack level covering the ones above it
    const order = spec.series.map((_, i) => i).reverse();
    const bars = window.uPlot.paths.bars({ size: [0.75, 40] });
    const series = order.map((i) => ({
      label: spec.series[i].label, stroke: spec.series[i].color, fill: spec.series[i].color,
      width: 0, paths: bars, points: { show: false },
    }));
    return build(el, spec.labels, series, order.map((i) => cum[i]), opts);
  }

  function groupedBars(el, spec, opts) {
    opts = opts || {};
    const k = spec.series.length;
    const series = spec.series.map((s, j) => ({
      label: s.label, stroke: s.color, fill: s.color, width: 0, points: { show: false },
      paths: window.uPlot.paths.bars({ size: [0.8 / k, 60], align: k === 1 ? 0 : (j === 0 ? -1 : 1) }),
    }));
    return build(el, spec.labels, series, spec.series.map((s) => s.values), opts);
  }

  /* a legend in HTML (prints crisply, readable names in any script) */
  function legend(el, series) {
    el.replaceChildren(...series.map((s) => window.gw.el("span", { class: "legend-item" },
      window.gw.el("span", { class: "swatch", dataset: { color: s.color } }), s.label)));
    for (const sw of el.querySelectorAll(".swatch")) sw.style.background = sw.dataset.color;
  }

  window.gwCharts = { stackedBars, groupedBars, legend, PALETTE };
})();
