/* One alert: snapshot, clip, fields, case history and actions, refreshed live when the case
 * moves (someone else's action shows up without a reload). */
(function () {
  "use strict";
  const gw = window.gw;
  const parts = location.pathname.split("/");
  const grid = decodeURIComponent(parts[2]);
  const alertId = decodeURIComponent(parts[3]);
  let item = null;
  let snapshotFor = null;
  let clipFor = null;
  const $ = (id) => document.getElementById(id);

  function field(dl, label, value) {
    if (value === null || value === undefined || value === "") return;
    dl.append(gw.el("dt", { text: label }), gw.el("dd", { text: String(value) }));
  }

  function describe(ev) {
    const bits = [ev.type.replace("_", " ")];
    if (ev.responder) bits.push("→ " + ev.responder);
    if (ev.outcome) bits.push("(" + ev.outcome.replace("_", " ") + ")");
    if (ev.level) bits.push("level " + ev.level + " to " + ev.target + ", " + ev.deadline + " missed");
    return bits.join(" ");
  }

  function showSnapshot() {
    const url = gw.snapshotUrl(item);
    if (!url || url === snapshotFor) return;
    snapshotFor = url;
    const img = $("snapshot");
    img.onload = () => {
      $("snapshot-note").textContent = gw.me.full_snapshots
        ? "Full picture: this view is recorded in the audit log."
        : "People are blurred.";
    };
    img.onerror = () => gw.flash($("snapshot-note"), "The snapshot could not be loaded.", true);
    img.src = url;
  }

  /* The clip of the raised message (stored alerts.clips.post_s after it: the player waits) */
  function showClip(messages) {
    const m = messages.find((x) => x.clip);
    if (!m || m.clip === clipFor || !window.gwClipPlayer) return;
    clipFor = m.clip;
    const clips = (gw.config && gw.config.clips) || { post_s: 10 };
    const since = Date.parse(m.stored_at || item.raised_at);
    window.gwClipPlayer($("clip"), {
      url: "/api/clips/" + encodeURIComponent(grid) + "/" + m.clip.split("/").map(encodeURIComponent).join("/"),
      dueAt: isFinite(since) ? since + (clips.post_s + 3) * 1000 : null,
      note: (variant) => variant === "full"
        ? "Full clip: this view is recorded in the audit log."
        : "People are blurred.",
    });
  }

  function showActions() {
    const st = item.state;
    const acts = gw.me.acts_on_cases;
    const c = item.case;
    $("actions").hidden = !acts || !c;
    $("btn-ack").disabled = st !== "open";
    $("btn-dispatch").disabled = !(st === "acknowledged" || st === "dispatched");
    $("btn-onscene").disabled = st !== "dispatched";
    $("btn-resolve").disabled = !(st === "acknowledged" || st === "dispatched" || st === "on_scene");
  }

  /* Export case: only for roles that see full pictures (the server refuses the others too) */
  function showExport() {
    $("export").hidden = !(gw.me.full_snapshots && item.case);
  }

  async function exportCase() {
    const msg = $("export-msg");
    const button = $("btn-export");
    button.disabled = true;
    gw.flash(msg, "exporting…");
    try {
      const r = await fetch("/api/cases/" + encodeURIComponent(grid) + "/" +
        encodeURIComponent(alertId) + "/export", {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRF-Token": gw.me.csrf },
      });
      if (r.status === 401) gw.toLogin();
      if (!r.ok) {
        let text = r.statusText;
        try {
          text = (await r.json()).error || text;
        } catch (e) { /* not JSON */ }
        throw new Error(text);
      }
      const blob = await r.blob();
      const m = /filename="([^"]+)"/.exec(r.headers.get("Content-Disposition") || "");
      const a = gw.el("a", { href: URL.createObjectURL(blob), download: m ? m[1] : "case.zip" });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 60000);
      const sha = r.headers.get("X-Gw-Manifest-Sha256") || "";
      gw.flash(msg, "Exported (recorded in the audit log); manifest SHA-256 " + sha.slice(0, 16) + "…");
    } catch (e) {
      gw.flash(msg, "Export refused: " + e.message, true);
    } finally {
      button.disabled = false;
    }
  }

  function render(data) {
    item = data.item;
    const c = item.case;
    document.title = "gridwatch · " + item.type + " · " + (item.camera_name || item.camera_id);
    $("title").textContent = item.type + " at " + (item.camera_name || item.camera_id);
    $("state").replaceChildren(gw.stateBadge(item));
    $("deadline").dataset.deadline = item.deadline ? JSON.stringify(item.deadline) : "null";
    const dl = $("fields");
    dl.replaceChildren();
    field(dl, "Alert id", item.id);
    field(dl, "Grid", item.grid_id);
    field(dl, "Camera", (item.camera_name || "") + " (" + item.camera_id + ")");
    field(dl, "Zone", item.zone_id);
    field(dl, "Severity", item.severity);
    field(dl, "Raised", gw.fmtDateTime(item.raised_at));
    field(dl, "Count", item.count + " (peak " + item.peak_count + ")");
    field(dl, "Alert", item.alert_state);
    if (c) {
      field(dl, "Acknowledged", c.acknowledged_by && c.acknowledged_by + " at " + gw.fmtTime(c.acknowledged_at));
      field(dl, "Dispatched to", c.dispatched_to && c.dispatched_to + " by " + c.dispatched_by);
      field(dl, "On scene", c.on_scene_by && c.on_scene_by + " at " + gw.fmtTime(c.on_scene_at));
      field(dl, "Resolved", c.resolved_by && c.resolved_by + " (" + (c.outcome || "").replace("_", " ") + ")");
      field(dl, "Note", c.note);
      field(dl, "Escalation", c.escalation_level ? "level " + c.escalation_level : "");
    } else {
      field(dl, "Case", data.case_error || "not opened yet");
    }
    $("history").replaceChildren(...data.history.map((ev) =>
      gw.el("li", { dataset: { type: ev.type } },
        gw.el("span", { class: "time", text: gw.fmtTime(ev.at) }), " ",
        gw.el("b", { text: ev.actor }), " ", describe(ev),
        ev.note ? gw.el("q", { text: ev.note }) : null)));
    $("messages").replaceChildren(...data.messages.map((m) =>
      gw.el("li", {},
        gw.el("span", { class: "time", text: gw.fmtTime(m.observed_at) }),
        " " + m.state + ": " + m.count + " (peak " + m.peak_count + ")" +
        (m.reason ? ", " + m.reason : ""))));
    const sel = $("dispatch-to");
    if (!sel.options.length) {
      for (const r of data.responders) {
        sel.append(gw.el("option", { value: r.name, text: r.display_name + " (" + r.role + ")" + (r.on_duty ? "" : " – off duty") }));
      }
    }
    showSnapshot();
    showClip(data.messages);
    showActions();
    showExport();
    gw.tickDeadlines();
  }

  async function load() {
    try {
      render(await gw.api("/api/alerts/" + encodeURIComponent(grid) + "/" + encodeURIComponent(alertId)));
    } catch (e) {
      gw.flash($("action-msg"), e.status === 404 ? "No such alert." : "Could not load: " + e.message, true);
    }
  }

  let reloadTimer = null;
  function reloadSoon() {
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(load, 150);
  }

  async function act(op, body) {
    const msg = $("action-msg");
    gw.flash(msg, op.replace("_", " ") + "…");
    try {
      await gw.caseAction(item, op, body);
      gw.flash(msg, op.replace("_", " ") + ": done");
      await load();
    } catch (e) {
      gw.flash(msg, op.replace("_", " ") + " refused: " + e.message, true);
    }
  }

  async function main() {
    await gw.loadMe();
    gw.header();
    await gw.loadConfig().catch(() => null); // (when a clip is due; the page works without)
    $("btn-ack").addEventListener("click", () => act("acknowledge"));
    $("btn-dispatch").addEventListener("click", () => act("dispatch", { responder: $("dispatch-to").value }));
    $("btn-onscene").addEventListener("click", () => act("on_scene"));
    $("btn-resolve").addEventListener("click", () =>
      act("resolve", { outcome: $("outcome").value, note: $("note").value }));
    $("btn-export").addEventListener("click", exportCase);
    window.gwLivePlayer($("live-video"), $("live-button"), $("live-status"), () => item && item.camera_id);
    await load();
    gw.feed({
      onStatus: (s) => gw.flash($("conn"), s, s !== "live"),
      onSnapshot: (all) => { if (all.some((i) => i.id === alertId)) reloadSoon(); },
      onItem: (i) => { if (i.id === alertId) reloadSoon(); },
    });
  }
  main();
})();
