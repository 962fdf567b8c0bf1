/* Cameras with their health (refreshed every 5 s) and a grid of live tiles. */
(function () {
  "use strict";
  const gw = window.gw;
  const players = new Map(); // camera id -> player
  const $ = (id) => document.getElementById(id);

  function healthBadge(h) {
    return gw.el("span", { class: "badge health-" + h.status, title: h.reason || "", text: h.status });
  }

  function renderRows(cams) {
    $("camera-rows").replaceChildren(...cams.map((c) => {
      const h = c.health;
      return gw.el("tr", { dataset: { id: c.id, status: h.status } },
        gw.el("td", {}, gw.el("a", { href: "/cameras/" + encodeURIComponent(c.id), text: c.name }),
          c.enabled ? null : gw.el("span", { class: "muted", text: " (disabled)" })),
        gw.el("td", { text: c.grid_id }),
        gw.el("td", {}, healthBadge(h), h.reason ? gw.el("span", { class: "muted", text: " " + h.reason }) : null),
        gw.el("td", { text: h.analysis_fps !== null && h.analysis_fps !== undefined ? h.analysis_fps.toFixed(1) + " fps" : "" }),
        gw.el("td", { text: h.count !== null && h.count !== undefined ? String(h.count) : "" }),
        gw.el("td", { text: h.age_s !== null && h.age_s !== undefined ? Math.round(h.age_s) + " s ago" : "never" }));
    }));
  }

  function renderTiles(cams) {
    const box = $("tiles");
    for (const c of cams) {
      let tile = document.getElementById("tile-" + c.id);
      if (!tile) {
        const video = gw.el("video", { class: "tile-video", autoplay: true, muted: true, playsinline: true });
        video.muted = true;
        const button = gw.el("button", { type: "button", text: "Live" });
        const status = gw.el("span", { class: "live-status" });
        tile = gw.el("figure", { id: "tile-" + c.id, class: "tile", dataset: { id: c.id } },
          video,
          gw.el("figcaption", {}, gw.el("span", { class: "tile-name", text: c.name }), " ",
            gw.el("span", { class: "tile-health" }), " ", button, " ", status));
        box.append(tile);
        players.set(c.id, window.gwLivePlayer(video, button, status, () => c.id));
      }
      tile.querySelector(".tile-health").replaceChildren(healthBadge(c.health));
    }
  }

  // The GB/T 28181 cascade (when configured): registration, last keepalive, alarms.
  function renderCascade(g) {
    const box = $("cascade");
    if (!g) { box.hidden = true; return; }
    box.hidden = false;
    const s = g.status;
    if (!s) {
      box.textContent = "GB/T 28181 cascade: no report" + (g.error ? " (" + g.error + ")" : " (not running?)");
      return;
    }
    const ka = s.last_keepalive_ok ? new Date(s.last_keepalive_ok * 1000).toLocaleTimeString() : "never";
    box.replaceChildren(
      "GB/T 28181 cascade to " + s.superior + ": ",
      gw.el("span", { class: "badge cascade-" + s.state, text: s.state }),
      " · last keepalive " + ka +
      " · alarms sent " + s.sent + " / pending " + s.pending + " / failed " + s.failed +
      (s.guard_on ? "" : " · guard OFF (alarms not sent)"));
    for (const row of document.querySelectorAll("#camera-rows tr")) {
      const ch = g.channels[row.dataset.id];
      if (ch) row.title = "GB/T 28181 channel " + ch;
    }
  }

  async function refresh() {
    try {
      const data = await gw.api("/api/cameras");
      renderRows(data.cameras);
      renderCascade(data.gb28181);
      renderTiles(data.cameras);
    } catch (e) {
      /* keep the last view; the next refresh tries again */
    }
  }

  async function main() {
    await gw.loadMe();
    gw.header();
    await refresh();
    setInterval(refresh, 5000);
    $("start-all").addEventListener("click", () => {
      for (const [id, p] of players) {
        const v = document.querySelector("#tile-" + CSS.escape(id) + " video");
        if (v && !v.gwLive) p.start();
      }
    });
    $("stop-all").addEventListener("click", () => { for (const p of players.values()) p.stop(); });
  }
  main();
})();
