/* An offline plan of the city drawn from the cameras' lat/lon (no tile server): a metric grid,
 * each grid's area (the hull around its cameras), cameras coloured by health and open alerts
 * coloured by case state. */
(function () {
  "use strict";
  const gw = window.gw;
  const SVG = "http://www.w3.org/2000/svg";
  const W = 1000, H = 700, PAD = 70;
  const svg = document.getElementById("map");
  const items = new Map();
  let cameras = [];
  const s = (tag, attrs, ...kids) => gw.el(tag, Object.assign({ ns: SVG }, attrs), ...kids);

  function projection(placed) {
    const lat0 = placed.reduce((a, c) => a + c.lat, 0) / placed.length;
    const k = Math.cos((lat0 * Math.PI) / 180);
    const xs = placed.map((c) => c.lon * k), ys = placed.map((c) => c.lat);
    let minX = Math.min(...xs), maxX = Math.max(...xs), minY = Math.min(...ys), maxY = Math.max(...ys);
    const span = Math.max(maxX - minX, maxY - minY, 0.004); // at least ~450 m across
    const cx = (minX + maxX) / 2, cy = (minY + maxY) / 2;
    const scale = Math.min(W - 2 * PAD, H - 2 * PAD) / span; // px per degree of latitude
    return {
      scale: scale,
      x: (lon) => W / 2 + (lon * k - cx) * scale,
      y: (lat) => H / 2 - (lat - cy) * scale,
    };
  }

  function hull(points) {
    const p = points.slice().sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    if (p.length < 3) return p;
    const cross = (o, a, b) => (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
    const lower = [], upper = [];
    for (const q of p) {
      while (lower.length >= 2 && cross(lower[lower.length - 2], lower[lower.length - 1], q) <= 0) lower.pop();
      lower.push(q);
    }
    for (const q of p.slice().reverse()) {
      while (upper.length >= 2 && cross(upper[upper.length - 2], upper[upper.length - 1], q) <= 0) upper.pop();
      upper.push(q);
    }
    return lower.slice(0, -1).concat(upper.slice(0, -1));
  }

  function gridArea(points) {
    // the hull grown by 30 px (a circle of points around each camera, then their hull)
    const ring = [];
    for (const [x, y] of points) {
      for (let a = 0; a < 16; a++) {
        ring.push([x + 30 * Math.cos((a * Math.PI) / 8), y + 30 * Math.sin((a * Math.PI) / 8)]);
      }
    }
    return hull(ring);
  }

  function draw() {
    const placed = cameras.filter((c) => c.lat !== null && c.lon !== null);
    document.getElementById("unplaced").replaceChildren(...cameras
      .filter((c) => c.lat === null || c.lon === null)
      .map((c) => gw.el("li", {}, gw.el("a", { href: "/cameras/" + encodeURIComponent(c.id), text: c.name }))));
    const kids = [s("rect", { x: 0, y: 0, width: W, height: H, class: "map-bg" })];
    if (!placed.length) {
      kids.push(s("text", { x: W / 2, y: H / 2, class: "map-empty", "text-anchor": "middle", text: "No camera has a position (lat/lon) in the config." }));
      svg.replaceChildren(...kids);
      return;
    }
    const pr = projection(placed);
    // metric grid: lines every 100 m, 200 m, 500 m or 1 km, whichever gives 60-200 px
    const pxPerM = pr.scale / 111320;
    const step = [100, 200, 500, 1000, 2000, 5000].find((m) => m * pxPerM >= 60) || 10000;
    const stepPx = step * pxPerM;
    for (let x = (W / 2) % stepPx; x < W; x += stepPx) kids.push(s("line", { x1: x, y1: 0, x2: x, y2: H, class: "map-grid" }));
    for (let y = (H / 2) % stepPx; y < H; y += stepPx) kids.push(s("line", { x1: 0, y1: y, x2: W, y2: y, class: "map-grid" }));
    kids.push(s("line", { x1: 20, y1: H - 20, x2: 20 + stepPx, y2: H - 20, class: "map-scale" }));
    kids.push(s("text", { x: 20, y: H - 28, class: "map-label", text: step >= 1000 ? step / 1000 + " km" : step + " m" }));
    kids.push(s("text", { x: W - 20, y: 30, class: "map-label", "text-anchor": "end", text: "N ↑" }));
    // grid areas
    const byGrid = new Map();
    for (const c of placed) {
      if (!byGrid.has(c.grid_id)) byGrid.set(c.grid_id, []);
      byGrid.get(c.grid_id).push([pr.x(c.lon), pr.y(c.lat)]);
    }
    let gi = 0;
    for (const [grid, pts] of byGrid) {
      const area = gridArea(pts);
      kids.push(s("polygon", { points: area.map((p) => p.join(",")).join(" "), class: "map-area area-" + (gi++ % 6) }));
      const top = area.reduce((a, p) => (p[1] < a[1] ? p : a), area[0]);
      kids.push(s("text", { x: top[0], y: top[1] - 6, class: "map-label", "text-anchor": "middle", text: grid }));
    }
    // cameras
    const where = new Map();
    for (const c of placed) {
      const x = pr.x(c.lon), y = pr.y(c.lat);
      where.set(c.id, [x, y]);
      kids.push(s("a", { href: "/cameras/" + encodeURIComponent(c.id) },
        s("circle", { cx: x, cy: y, r: 9, class: "cam health-" + c.health.status, dataset: { id: c.id } },
          s("title", { text: c.name + ": " + c.health.status })),
        s("text", { x: x + 26, y: y + 5, class: "map-label", text: c.name })));
    }
    // open alerts, fanned out around their camera
    const perCam = new Map();
    const open = [...items.values()].filter((i) => i.state !== "resolved")
      .sort((a, b) => (a.raised_at < b.raised_at ? -1 : 1));
    for (const i of open) {
      const at = where.get(i.camera_id);
      if (!at) continue;
      const n = perCam.get(i.camera_id) || 0;
      perCam.set(i.camera_id, n + 1);
      const r = 18 + 7 * n;
      kids.push(s("a", { href: gw.itemUrl(i) },
        s("circle", { cx: at[0], cy: at[1], r: r, class: "alert-ring state-" + i.state, dataset: { id: i.id } },
          s("title", { text: i.type + " · " + (gw.STATE_LABELS[i.state] || i.state) + " · " + gw.fmtTime(i.raised_at) }))));
    }
    svg.replaceChildren(...kids);
  }

  async function refreshCameras() {
    try {
      cameras = (await gw.api("/api/cameras")).cameras;
      draw();
    } catch (e) {
      /* keep the last plan */
    }
  }

  async function main() {
    await gw.loadMe();
    gw.header();
    await refreshCameras();
    setInterval(refreshCameras, 10000);
    gw.feed({
      onStatus: (st) => gw.flash(document.getElementById("conn"), st, st !== "live"),
      onSnapshot: (all) => { items.clear(); all.forEach((i) => items.set(i.id, i)); draw(); },
      onItem: (i) => { items.set(i.id, i); draw(); },
    });
  }
  main();
})();
