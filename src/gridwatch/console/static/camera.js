/* One camera: health, live video, and its alerts from the live wall feed. */
(function () {
  "use strict";
  const gw = window.gw;
  const cameraId = decodeURIComponent(location.pathname.split("/")[2]);
  const items = new Map();
  const $ = (id) => document.getElementById(id);

  function field(dl, label, value) {
    if (value === null || value === undefined || value === "") return;
    dl.append(gw.el("dt", { text: label }), gw.el("dd", {}, value));
  }

  async function refresh() {
    try {
      const c = (await gw.api("/api/cameras/" + encodeURIComponent(cameraId))).camera;
      $("title").textContent = c.name + " (" + c.id + ")";
      const dl = $("fields");
      dl.replaceChildren();
      field(dl, "Grid", c.grid_id);
      field(dl, "Health", gw.el("span", { class: "badge health-" + c.health.status, text: c.health.status }));
      field(dl, "Why", c.health.reason);
      field(dl, "Analysis", c.health.analysis_fps !== null ? c.health.analysis_fps + " fps" : "");
      field(dl, "People now", c.health.count !== null ? String(c.health.count) : "");
      field(dl, "Position", c.lat !== null ? c.lat + ", " + c.lon : "");
    } catch (e) {
      $("title").textContent = e.status === 404 ? "No such camera" : "Camera";
    }
  }

  function renderAlerts() {
    const mine = [...items.values()].filter((i) => i.camera_id === cameraId)
      .sort((a, b) => (a.raised_at < b.raised_at ? 1 : -1));
    $("camera-alerts").replaceChildren(...mine.map((i) =>
      gw.el("li", { class: "sev-" + i.severity },
        gw.el("a", { href: gw.itemUrl(i) }, gw.fmtDateTime(i.raised_at) + " " + i.type + " "),
        gw.stateBadge(i))));
  }

  async function main() {
    await gw.loadMe();
    gw.header();
    window.gwLivePlayer($("live-video"), $("live-button"), $("live-status"), () => cameraId);
    await refresh();
    setInterval(refresh, 5000);
    gw.feed({
      onSnapshot: (all) => { items.clear(); all.forEach((i) => items.set(i.id, i)); renderAlerts(); },
      onItem: (i) => { items.set(i.id, i); renderAlerts(); },
    });
  }
  main();
})();
