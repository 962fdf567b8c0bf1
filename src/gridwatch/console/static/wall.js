/* The alert wall: live from /api/events, newest first, filtered in the browser. */
(function () {
  "use strict";
  const gw = window.gw;
  const items = new Map(); // id -> item
  const shownAt = new Map(); // id -> Date.now() when its row first appeared
  const list = document.getElementById("alerts");
  const f = {
    grid: document.getElementById("f-grid"),
    type: document.getElementById("f-type"),
    state: document.getElementById("f-state"),
    camera: document.getElementById("f-camera"),
  };

  function addOption(select, value, label) {
    if ([...select.options].some((o) => o.value === value)) return;
    select.append(gw.el("option", { value: value, text: label || value }));
  }

  function matches(item) {
    if (f.grid.value && item.grid_id !== f.grid.value) return false;
    if (f.type.value && item.type !== f.type.value) return false;
    if (f.camera.value && item.camera_id !== f.camera.value) return false;
    const st = f.state.value;
    if (st === "active" && item.state === "resolved") return false;
    if (st && st !== "active" && item.state !== st) return false;
    return true;
  }

  function row(item) {
    const c = item.case;
    const who = c && (c.on_scene_by || c.dispatched_to || c.acknowledged_by);
    const when = shownAt.get(item.id);
    return gw.el(
      "li",
      {
        id: "alert-" + item.id,
        class: "alert sev-" + item.severity + (item.state === "resolved" ? " done" : ""),
        dataset: {
          id: item.id, grid: item.grid_id, state: item.state, storedAt: item.stored_at || "",
          shownAt: String(when),
        },
      },
      gw.el("a", { class: "alert-link", href: gw.itemUrl(item) },
        gw.el("span", { class: "time", text: gw.fmtTime(item.raised_at) }),
        gw.el("span", { class: "type", text: item.type }),
        gw.el("span", { class: "camera", text: item.camera_name || item.camera_id }),
        gw.el("span", { class: "grid", text: item.grid_id }),
        gw.el("span", { class: "count", text: item.count + " (peak " + item.peak_count + ")" }),
        gw.stateBadge(item),
        gw.el("span", { class: "who", text: who ? "· " + who : "" }),
        gw.el("span", {
          class: "deadline",
          dataset: item.deadline ? { deadline: JSON.stringify(item.deadline) } : {},
        }),
        item.alert_state === "cleared" ? gw.el("span", { class: "cleared", text: "cleared" }) : null,
      ),
    );
  }

  function render() {
    const sorted = [...items.values()].sort((a, b) => (a.raised_at < b.raised_at ? 1 : -1));
    const shown = sorted.filter(matches);
    const rows = shown.map((item) => {
      if (!shownAt.has(item.id)) shownAt.set(item.id, Date.now());
      return row(item);
    });
    list.replaceChildren(...rows);
    document.getElementById("empty").hidden = rows.length > 0;
    document.getElementById("count").textContent = shown.length + " of " + items.size;
    gw.tickDeadlines();
  }

  function remember(item) {
    items.set(item.id, item);
    addOption(f.type, item.type);
    addOption(f.camera, item.camera_id, item.camera_name || item.camera_id);
  }

  async function main() {
    await gw.loadMe();
    gw.header();
    const cfg = await gw.loadConfig();
    for (const g of cfg.grids) addOption(f.grid, g.id, g.name);
    for (const sel of Object.values(f)) sel.addEventListener("change", render);
    gw.feed({
      onStatus: (s) => gw.flash(document.getElementById("conn"), s, s !== "live"),
      onSnapshot: (all) => {
        items.clear();
        all.forEach(remember);
        render();
      },
      onItem: (item) => {
        remember(item);
        render();
      },
    });
  }
  main();
})();
