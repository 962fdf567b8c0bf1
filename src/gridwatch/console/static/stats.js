/* The Statistics page: people in per 15 minutes at a camera's lines against the same
 * weekday's typical band (uPlot, vendored under /static/vendor/uplot/), and a heat map of where
 * people stood drawn over the camera's blurred picture (a canvas).
 *
 * "Flow of" is every school gate in the person's scope (cameras with a line-crossing rule; the
 * default) or one camera; the heat map has its own camera. What was drawn stays readable in
 * window.gwStats (flows: the API's answers, plots: {camera, line, plot, data} per uPlot chart,
 * heat: the API's answer, picture: "blurred" or "none"): the browser tests read it back.
 */
(function () {
  "use strict";
  const gw = window.gw;
  const $ = (id) => document.getElementById(id);
  const state = {
    info: null, flow: null, flows: [], plots: [], heat: null, picture: "none", heatDrawn: false,
  };
  window.gwStats = state;

  const COLORS = { today: "#f5b400", median: "#9cc7ff", band: "rgba(61, 139, 253, 0.22)" };

  function query() {
    return new URLSearchParams(location.search);
  }

  function setQuery(params) {
    const q = query();
    for (const [k, v] of Object.entries(params)) {
      if (v) q.set(k, v); else q.delete(k);
    }
    history.replaceState(null, "", location.pathname + "?" + q.toString());
  }

  function msg(text, bad) {
    gw.flash($("msg"), text, bad);
  }

  // -- flow -------------------------------------------------------------------------------

  function flowOptions(title, width, tz) {
    return {
      title: title,
      width: width,
      height: 220,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), tz),
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(4, max * 1.1)] } },
      axes: [
        { stroke: "#8da2b8", grid: { stroke: "#2a3b4f" }, ticks: { stroke: "#2a3b4f" } },
        { stroke: "#8da2b8", grid: { stroke: "#2a3b4f" }, ticks: { stroke: "#2a3b4f" }, label: "people in" },
      ],
      series: [
        { label: "time" },
        { label: "this day", stroke: COLORS.today, fill: "rgba(245, 180, 0, 0.55)", width: 1,
          paths: uPlot.paths.bars({ size: [0.85, 40] }), points: { show: false } },
        { label: "median", stroke: COLORS.median, width: 2, dash: [6, 4], points: { show: false } },
        { label: "p10", stroke: "rgba(61, 139, 253, 0.6)", width: 1, points: { show: false } },
        { label: "p90", stroke: "rgba(61, 139, 253, 0.6)", width: 1, points: { show: false } },
      ],
      bands: [{ series: [4, 3], fill: COLORS.band }],
      legend: { live: true },
    };
  }

  const GATES = "_gates";

  function flowCameras() {
    const v = $("camera").value;
    if (!state.info) return [];
    if (v === GATES) return state.info.cameras.filter((c) => c.gate);
    return state.info.cameras.filter((c) => c.id === v);
  }

  async function loadFlow() {
    const cams = flowCameras();
    const day = $("day").value;
    for (const p of state.plots) p.plot.destroy();
    state.plots = [];
    state.flows = [];
    $("flow-charts").replaceChildren();
    const answers = await Promise.all(cams.map((c) =>
      gw.api("/api/statistics/flow/" + encodeURIComponent(c.id) +
        (day ? "?date=" + encodeURIComponent(day) : ""))));
    state.flows = answers;
    state.flow = answers[0] || null;
    const width = Math.max(300, $("flow-charts").clientWidth - 20);
    let weeks = 0;
    answers.forEach((data, i) => {
      const cam = cams[i];
      const xs = data.slots.map((s) => Date.parse(s.start) / 1000);
      for (const line of data.lines) {
        weeks = Math.max(weeks, line.weeks);
        const box = gw.el("div", { class: "flow-chart", dataset: { camera: cam.id, line: line.line } });
        $("flow-charts").append(box);
        const series = [xs, line.today, line.median, line.p10, line.p90];
        const title = cam.name + " · line " + line.line;
        const plot = new uPlot(flowOptions(title, width, data.timezone), series, box);
        state.plots.push({ camera: cam.id, line: line.line, plot: plot, data: series });
      }
    });
    $("weeks").textContent = String(weeks);
    $("flow-empty").hidden = state.plots.length > 0;
  }

  // -- heat -------------------------------------------------------------------------------

  function ramp(t) {
    // transparent blue → yellow → red, by t in [0, 1]
    const stops = [[0, [40, 90, 255]], [0.5, [255, 220, 0]], [1, [255, 40, 30]]];
    let i = 0;
    while (i < stops.length - 2 && t > stops[i + 1][0]) i++;
    const [t0, c0] = stops[i];
    const [t1, c1] = stops[i + 1];
    const f = Math.min(1, Math.max(0, (t - t0) / (t1 - t0)));
    return c0.map((v, k) => Math.round(v + (c1[k] - v) * f));
  }

  function loadPicture(cam) {
    return new Promise((resolve) => {
      const img = new Image();
      img.onload = () => resolve(img);
      img.onerror = () => resolve(null);
      img.src = "/api/statistics/picture/" + encodeURIComponent(cam) + "?t=" + Date.now();
    });
  }

  const SCALE_H = 34; // the strip under the map with the colour scale

  function drawHeat(canvas, data, img) {
    const w = 960;
    const h = img ? Math.round(w * img.naturalHeight / img.naturalWidth) : Math.round(w * data.rows / data.cols);
    canvas.width = w;
    canvas.height = h + SCALE_H;
    canvas.dataset.mapHeight = String(h);
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#3a3f45";
    ctx.fillRect(0, 0, w, h);
    if (img) ctx.drawImage(img, 0, 0, w, h);
    const cw = w / data.cols;
    const ch = h / data.rows;
    if (data.max > 0) {
      for (let r = 0; r < data.rows; r++) {
        for (let c = 0; c < data.cols; c++) {
          const v = data.cells[r * data.cols + c];
          if (!v) continue;
          const t = Math.sqrt(v / data.max);
          const [R, G, B] = ramp(t);
          ctx.fillStyle = "rgba(" + R + "," + G + "," + B + "," + (0.25 + 0.5 * t).toFixed(3) + ")";
          ctx.fillRect(Math.floor(c * cw), Math.floor(r * ch), Math.ceil(cw), Math.ceil(ch));
        }
      }
    }
    // the scale, in the strip under the map: 0 .. the most foot points in one cell
    ctx.fillStyle = "#16222f";
    ctx.fillRect(0, h, w, SCALE_H);
    const sx = w - 200, sy = h + 18;
    for (let i = 0; i < 160; i++) {
      const [R, G, B] = ramp(i / 159);
      ctx.fillStyle = "rgb(" + R + "," + G + "," + B + ")";
      ctx.fillRect(sx + i, sy, 1, 10);
    }
    ctx.fillStyle = "#e6edf5";
    ctx.font = "12px system-ui, sans-serif";
    ctx.fillText("foot points per cell", 8, sy + 9);
    ctx.fillText("0", sx - 14, sy + 9);
    ctx.fillText(String(data.max), sx + 166, sy + 9);
  }

  async function loadHeat() {
    const cam = $("heat-camera").value;
    if (!cam) return;
    const q = new URLSearchParams();
    if ($("heat-since").value) q.set("since", $("heat-since").value);
    if ($("heat-until").value) q.set("until", $("heat-until").value);
    state.heatDrawn = false;
    const [data, img] = await Promise.all([
      gw.api("/api/statistics/heat/" + encodeURIComponent(cam) + "?" + q.toString()),
      loadPicture(cam),
    ]);
    state.heat = data;
    state.picture = img ? "blurred" : "none";
    drawHeat($("heat"), data, img);
    state.heatDrawn = true;
    $("heat-info").textContent = data.records + " records, " + data.samples + " analysed frames" +
      (img ? "" : " · no picture of this camera yet");
  }

  function setRange(kind) {
    const today = state.info ? state.info.today : new Date().toISOString().slice(0, 10);
    const back = { today: 0, "7d": 6, "30d": 29 }[kind] || 0;
    const d = new Date(today + "T00:00:00Z");
    d.setUTCDate(d.getUTCDate() - back);
    $("heat-since").value = d.toISOString().slice(0, 10) + "T00:00";
    $("heat-until").value = "";
  }

  // -- page -------------------------------------------------------------------------------

  async function run(what) {
    const main = document.querySelector("main.stats");
    main.setAttribute("aria-busy", "true");
    setQuery({ camera: $("camera").value, date: $("day").value, heat_camera: $("heat-camera").value,
      heat_since: $("heat-since").value, heat_until: $("heat-until").value });
    try {
      await Promise.all(what.map((f) => f()));
      msg("");
    } catch (e) {
      msg(e.message || String(e), true);
    } finally {
      main.setAttribute("aria-busy", "false");
    }
  }

  async function main() {
    await gw.loadMe();
    gw.header();
    const info = await gw.api("/api/statistics/cameras");
    state.info = info;
    const label = (c) => c.name + (c.gate ? " · gate" : "") + " (" + c.grid_id + ")";
    const options = () => info.cameras.map((c) => gw.el("option", { value: c.id, text: label(c) }));
    const gates = info.cameras.filter((c) => c.gate);
    $("camera").replaceChildren(
      ...(gates.length ? [gw.el("option", { value: GATES, text: "All school gates (" + gates.length + ")" })] : []),
      ...options());
    $("heat-camera").replaceChildren(...options());
    const q = query();
    const known = (id) => id === GATES ? gates.length > 0 : info.cameras.some((c) => c.id === id);
    if (q.get("camera") && known(q.get("camera"))) $("camera").value = q.get("camera");
    const heatCam = q.get("heat_camera") || (q.get("camera") !== GATES && q.get("camera")) || "";
    if (heatCam && info.cameras.some((c) => c.id === heatCam)) $("heat-camera").value = heatCam;
    $("day").value = q.get("date") || info.today;
    $("tz").textContent = "(" + info.timezone + ")";
    setRange("today");
    if (q.get("heat_since")) $("heat-since").value = q.get("heat_since");
    if (q.get("heat_until")) $("heat-until").value = q.get("heat_until");
    if (!info.cameras.length) {
      msg("No cameras in your grid.");
      document.querySelector("main.stats").setAttribute("aria-busy", "false");
      return;
    }
    $("camera").addEventListener("change", () => run([loadFlow]));
    $("day").addEventListener("change", () => run([loadFlow]));
    $("heat-camera").addEventListener("change", () => run([loadHeat]));
    $("heat-since").addEventListener("change", () => run([loadHeat]));
    $("heat-until").addEventListener("change", () => run([loadHeat]));
    for (const b of document.querySelectorAll("#heat-pick button[data-range]")) {
      b.addEventListener("click", () => {
        setRange(b.dataset.range);
        run([loadHeat]);
      });
    }
    await run([loadFlow, loadHeat]);
  }
  main();
})();
