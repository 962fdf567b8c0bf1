/* gridwatch console: helpers shared by every page (no framework, no build step).
 *
 * Everything the server sends is put into the page with textContent or attributes, never as
 * HTML, so a camera name cannot inject markup. State-changing requests carry the session's
 * CSRF token in X-CSRF-Token (the server refuses them without it).
 */
(function () {
  "use strict";

  const gw = { me: null, config: null };

  /* el("div", {class: "x", dataset: {id: 1}, onclick: f}, "text", child, ...) */
  gw.el = function (tag, attrs, ...children) {
    const ns = attrs && attrs.ns;
    const e = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "ns" || v === undefined || v === null || v === false) continue;
      if (k === "dataset") Object.assign(e.dataset, v);
      else if (k.startsWith("on") && typeof v === "function") e.addEventListener(k.slice(2), v);
      else if (k === "text") e.textContent = v;
      else e.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  };

  gw.toLogin = function () {
    location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
  };

  gw.loadMe = async function () {
    const r = await fetch("/api/me", { credentials: "same-origin" });
    if (r.status === 401) {
      gw.toLogin();
      throw new Error("not logged in");
    }
    gw.me = await r.json();
    return gw.me;
  };

  gw.loadConfig = async function () {
    gw.config = await gw.api("/api/config");
    return gw.config;
  };

  /* fetch JSON; throws an Error with .status and the server's message on failure */
  gw.api = async function (path, opts) {
    opts = opts || {};
    const headers = { Accept: "application/json" };
    const init = { method: opts.method || "GET", credentials: "same-origin", headers };
    if (init.method !== "GET") {
      headers["X-CSRF-Token"] = gw.me ? gw.me.csrf : "";
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(opts.body || {});
    }
    const r = await fetch(path, init);
    if (r.status === 401) {
      gw.toLogin();
    }
    let data = null;
    try {
      data = await r.json();
    } catch (e) {
      data = { error: r.statusText };
    }
    if (!r.ok) {
      const err = new Error((data && data.error) || r.statusText);
      err.status = r.status;
      err.code = data && data.code;
      throw err;
    }
    return data;
  };

  gw.caseAction = function (item, op, body) {
    const path = "/api/cases/" + encodeURIComponent(item.grid_id) + "/" +
      encodeURIComponent(item.id) + "/" + op;
    return gw.api(path, { method: "POST", body: body || {} });
  };

  gw.snapshotUrl = function (item, variant) {
    const name = item.snapshot || item.latest_snapshot;
    if (!name) return null;
    let url = "/api/snapshots/" + encodeURIComponent(item.grid_id) + "/" +
      name.split("/").map(encodeURIComponent).join("/") + "?alert=" + encodeURIComponent(item.id);
    if (variant) url += "&variant=" + variant;
    return url;
  };

  /* The live wall: calls onSnapshot(items) once per (re)connection, onItem(item) per change,
   * onStatus("live" | "reconnecting"). EventSource reconnects by itself; a closed one (the
   * server answered 401) means the session ended. */
  gw.feed = function (handlers) {
    let es = null;
    const status = handlers.onStatus || function () {};
    function open() {
      es = new EventSource("/api/events");
      es.addEventListener("snapshot", (ev) => {
        status("live");
        handlers.onSnapshot(JSON.parse(ev.data).items);
      });
      es.addEventListener("item", (ev) => handlers.onItem(JSON.parse(ev.data)));
      es.addEventListener("logout", () => gw.toLogin());
      es.onerror = () => {
        status("reconnecting");
        if (es.readyState === EventSource.CLOSED) {
          fetch("/api/me", { credentials: "same-origin" }).then((r) => {
            if (r.status === 401) gw.toLogin();
            else setTimeout(open, 2000);
          }, () => setTimeout(open, 3000));
        }
      };
    }
    open();
    return { close: () => es && es.close() };
  };

  gw.pad = (n) => String(n).padStart(2, "0");

  gw.fmtTime = function (iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return gw.pad(d.getHours()) + ":" + gw.pad(d.getMinutes()) + ":" + gw.pad(d.getSeconds());
  };

  gw.fmtDateTime = function (iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return d.getFullYear() + "-" + gw.pad(d.getMonth() + 1) + "-" + gw.pad(d.getDate()) + " " +
      gw.fmtTime(iso);
  };

  gw.fmtDuration = function (s) {
    s = Math.max(0, Math.round(s));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    return (h ? h + ":" + gw.pad(m) : String(m)) + ":" + gw.pad(sec);
  };

  /* "ack 0:42" / "ack overdue 1:05"; null when the item has no deadline now */
  gw.countdown = function (deadline) {
    if (!deadline) return null;
    const left = (new Date(deadline.at).getTime() - Date.now()) / 1000;
    const what = deadline.kind === "acknowledge" ? "ack" : "on scene";
    if (left >= 0) return { text: what + " in " + gw.fmtDuration(left), overdue: false };
    return { text: what + " overdue " + gw.fmtDuration(-left), overdue: true };
  };

  /* keep every [data-deadline] element's countdown current */
  gw.tickDeadlines = function () {
    for (const e of document.querySelectorAll("[data-deadline]")) {
      const c = gw.countdown(JSON.parse(e.dataset.deadline));
      e.textContent = c ? c.text : "";
      e.classList.toggle("overdue", !!(c && c.overdue));
    }
  };
  setInterval(gw.tickDeadlines, 1000);

  gw.STATE_LABELS = {
    open: "open",
    acknowledged: "acknowledged",
    dispatched: "dispatched",
    on_scene: "on scene",
    resolved: "resolved",
  };

  gw.stateBadge = function (item) {
    let label = gw.STATE_LABELS[item.state] || item.state;
    if (item.state === "resolved" && item.case && item.case.outcome === "false_alarm") {
      label = "false alarm";
    }
    return gw.el("span", { class: "badge state-" + item.state, text: label });
  };

  gw.itemUrl = (item) =>
    "/alerts/" + encodeURIComponent(item.grid_id) + "/" + encodeURIComponent(item.id);

  gw.logout = async function () {
    try {
      await gw.api("/logout", { method: "POST" });
    } finally {
      location.href = "/login";
    }
  };

  /* the header's user line and logout button */
  gw.header = function () {
    const who = document.getElementById("who");
    if (who && gw.me) {
      who.textContent = (gw.me.display_name || gw.me.name) + " · " + gw.me.role +
        (gw.me.grid ? " · " + gw.me.grid : "");
    }
    const out = document.getElementById("logout");
    if (out) out.addEventListener("click", gw.logout);
  };

  gw.flash = function (el, text, bad) {
    if (!el) return;
    el.textContent = text;
    el.classList.toggle("bad", !!bad);
  };

  window.gw = gw;
})();
