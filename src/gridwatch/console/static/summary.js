/* The per-grid daily summary (/summary/<grid>?day=YYYY-MM-DD): figures, two charts and the
 * day's incidents, from /api/summary/<grid>. Times are shown in the deployment's time zone
 * (the server sends local ISO times; they are read as written, not converted by the browser). */
(function () {
  "use strict";
  const gw = window.gw;
  const charts = window.gwCharts;
  const $ = (id) => document.getElementById(id);
  let drawn = [];
  const PRINT_WIDTH = 660; // CSS px: inside A4's 186 mm printable width, less the box's padding
  const printing = window.matchMedia("print");

  const dur = (s) => (s === null || s === undefined ? "–" : gw.fmtDuration(s));
  const pair = (st) => (st.n ? dur(st.median_s) + " · " + dur(st.p90_s) : "–");
  const localTime = (iso) => iso.slice(11, 19); // "2026-11-26T08:30:00+08:00" -> "08:30:00"

  function where() {
    const grid = decodeURIComponent(location.pathname.split("/")[2] || "");
    const day = new URLSearchParams(location.search).get("day") || "";
    return { grid, day };
  }

  function go(grid, day) {
    location.href = "/summary/" + encodeURIComponent(grid) + (day ? "?day=" + encodeURIComponent(day) : "");
  }

  function renderFigures(s) {
    $("grid-name").textContent = s.grid_name;
    $("day-label").textContent = s.day;
    $("tz").textContent = "(" + s.timezone + ")";
    $("day").value = s.day;
    $("truncated").hidden = !s.truncated;
    $("k-incidents").textContent = String(s.incidents);
    $("k-ack").textContent = pair(s.acknowledge);
    $("k-arrive").textContent = pair(s.arrive);
    $("k-fa").textContent = s.false_alarm_rate === null
      ? "– (none resolved)"
      : Math.round(s.false_alarm_rate * 100) + "% (" + s.false_alarms + " of " + s.resolved + ")";
  }

  function renderTables(s) {
    $("type-rows").replaceChildren(...s.per_type.map((t) => gw.el("tr", { dataset: { type: t.type } },
      gw.el("td", { text: t.type }), gw.el("td", { class: "num", text: String(t.incidents) }),
      gw.el("td", { class: "num", text: dur(t.acknowledge.median_s) }),
      gw.el("td", { class: "num", text: dur(t.acknowledge.p90_s) }),
      gw.el("td", { class: "num", text: dur(t.arrive.median_s) }),
      gw.el("td", { class: "num", text: dur(t.arrive.p90_s) }),
      gw.el("td", { class: "num", text: String(t.resolved) }),
      gw.el("td", { class: "num", text: String(t.false_alarms) }))));
    $("incident-rows").replaceChildren(...s.rows.map((r) => gw.el("tr", { dataset: { id: r.id } },
      gw.el("td", { class: "num" }, gw.el("a", {
        href: gw.itemUrl({ grid_id: s.grid_id, id: r.id }), text: localTime(r.opened_at) })),
      gw.el("td", { text: r.type }),
      gw.el("td", { class: "camera", text: r.camera_name || r.camera_id }),
      gw.el("td", { text: r.severity }),
      gw.el("td", { text: gw.STATE_LABELS[r.state] || r.state }),
      gw.el("td", { class: "num", text: dur(r.acknowledge_s) }),
      gw.el("td", { class: "num", text: dur(r.arrive_s) }),
      gw.el("td", { text: r.outcome === "false_alarm" ? "false alarm" : (r.outcome || "") }))));
    $("none").hidden = s.rows.length > 0;
  }

  function renderCharts(s) {
    const hours = Array.from({ length: 24 }, (_, h) => gw.pad(h));
    const byHour = s.types.map((t, i) => ({
      label: t, color: charts.PALETTE[i % charts.PALETTE.length], values: s.by_hour[t],
    }));
    const times = [
      { label: "acknowledge (median, min)", color: "#f5b400",
        values: s.per_type.map((t) => t.acknowledge.median_s === null ? null : t.acknowledge.median_s / 60) },
      { label: "arrive (median, min)", color: "#3d8bfd",
        values: s.per_type.map((t) => t.arrive.median_s === null ? null : t.arrive.median_s / 60) },
    ];
    drawn = [
      charts.stackedBars($("chart-hours"), { labels: hours, series: byHour }),
      charts.groupedBars($("chart-times"), { labels: s.per_type.map((t) => t.type), series: times },
        { height: 180, yFmt: (v) => String(v) }),
    ];
    charts.legend($("legend-hours"), byHour);
    charts.legend($("legend-times"), times);
  }

  async function main() {
    await gw.loadMe();
    gw.header();
    const cfg = await gw.loadConfig();
    const here = where();
    $("grid").replaceChildren(...cfg.grids.map((g) =>
      gw.el("option", { value: g.id, selected: g.id === here.grid, text: g.name })));
    $("grid").addEventListener("change", () => go($("grid").value, $("day").value));
    $("day").addEventListener("change", () => $("day").value && go(here.grid, $("day").value));
    $("print").addEventListener("click", () => window.print());
    let s;
    try {
      s = await gw.api("/api/summary/" + encodeURIComponent(here.grid) +
        (here.day ? "?day=" + encodeURIComponent(here.day) : ""));
    } catch (e) {
      gw.flash($("msg"), e.message, true);
      return;
    }
    document.title = "gridwatch · " + s.grid_name + " · " + s.day;
    renderFigures(s);
    renderTables(s);
    renderCharts(s);
    // charts follow the window; on paper they are redrawn at the A4 page's width (not scaled
    // down from the screen's, which would shrink their labels)
    const fit = () => drawn.forEach((c, i) =>
      c.resize(Math.max(320, Math.floor($(i ? "chart-times" : "chart-hours").clientWidth))));
    const paper = () => drawn.forEach((c) => c.resize(PRINT_WIDTH));
    let t = null;
    window.addEventListener("resize", () => {
      clearTimeout(t);
      t = setTimeout(() => (printing.matches ? paper() : fit()), 150);
    });
    window.addEventListener("beforeprint", paper);
    window.addEventListener("afterprint", fit);
    printing.addEventListener("change", () => (printing.matches ? paper() : fit()));
    if (printing.matches) paper();
    const m = document.querySelector("main.summary");
    m.setAttribute("aria-busy", "false");
    m.dataset.ready = "1";
  }

  main().catch((e) => gw.flash($("msg"), e.message || String(e), true));
})();
