/* The responder view (/m/): the open cases of the user's grid, one big card each, with
 * acknowledge / on scene / resolve and the alert's clip (blurred, on a tap; at once for the case
 * a notification opened); a button registers this phone for Web Push. */
(function () {
  "use strict";
  const gw = window.gw;
  const items = new Map();
  const clips = new Map(); // alert id -> its clip player's box, kept when its card is redrawn
  const $ = (id) => document.getElementById(id);
  const focus = location.pathname.startsWith("/m/cases/")
    ? decodeURIComponent(location.pathname.split("/")[4] || "") : "";

  function mine(item) {
    return item.case && item.case.dispatched_to === gw.me.name;
  }

  function button(label, cls, onclick, enabled) {
    return gw.el("button", { type: "button", class: cls, disabled: !enabled, onclick: onclick, text: label });
  }

  async function act(item, op, body, msg) {
    gw.flash(msg, op.replace("_", " ") + "…");
    try {
      await gw.caseAction(item, op, body);
      gw.flash(msg, op.replace("_", " ") + ": done");
    } catch (e) {
      gw.flash(msg, op.replace("_", " ") + " refused: " + e.message, true);
    }
  }

  async function onScene(item, msg) {
    // a responder reports on scene on a case sent to them; an acknowledged case they take on
    // first (dispatch to themselves), both recorded in the case history
    if (item.state === "acknowledged") {
      await act(item, "dispatch", { responder: gw.me.name }, msg);
    }
    await act(item, "on_scene", {}, msg);
  }

  /* The raised message's clip (item.clip, an object name in gw_clips), played in the
   * responder's version: people blurred. */
  function clipUrl(item) {
    return "/m/clips/" + encodeURIComponent(item.grid_id) + "/" +
      item.clip.split("/").map(encodeURIComponent).join("/") + "?variant=blurred";
  }

  function openClip(item, slot) {
    let box = clips.get(item.id);
    if (!box) {
      box = gw.el("div", { class: "clip mclip" });
      const since = Date.parse(item.stored_at || item.raised_at);
      const player = window.gwClipPlayer(box, {
        url: clipUrl(item),
        dueAt: isFinite(since) ? since + (gw.config.clips.post_s + 3) * 1000 : null,
        note: () => "People are blurred.",
      });
      box.stopPlayer = player.stop;
      clips.set(item.id, box);
    }
    slot.replaceChildren(box);
  }

  function clipSlot(item) {
    if (!item.clip || !window.gwClipPlayer || !(gw.config && gw.config.clips && gw.config.clips.enabled)) return null;
    const slot = gw.el("div", { class: "mclip-slot" });
    if (clips.has(item.id) || item.id === focus) openClip(item, slot);
    else slot.append(button("Play clip", "clip-open", () => openClip(item, slot), true));
    return slot;
  }

  function card(item) {
    const st = item.state;
    const msg = gw.el("p", { class: "msg", role: "status" });
    const note = gw.el("textarea", { rows: 2, maxlength: 2000, placeholder: "Note (optional)", class: "note" });
    const canResolve = st === "acknowledged" || st === "on_scene" || (st === "dispatched" && (mine(item) || gw.me.role !== "responder"));
    const canOnScene = st === "acknowledged" || (st === "dispatched" && (mine(item) || gw.me.role !== "responder"));
    const snap = gw.snapshotUrl(item, "blurred");
    const c = item.case || {};
    return gw.el("li", { id: "case-" + item.id, class: "mcase sev-" + item.severity + (item.id === focus ? " focus" : ""), dataset: { id: item.id, state: st } },
      gw.el("div", { class: "mcase-head" },
        gw.el("b", { text: item.type }), " ", gw.stateBadge(item),
        gw.el("span", { class: "deadline", dataset: item.deadline ? { deadline: JSON.stringify(item.deadline) } : {} })),
      gw.el("div", { class: "mcase-where", text: (item.camera_name || item.camera_id) + " · " + gw.fmtTime(item.raised_at) + " · " + item.count + " people" }),
      c.dispatched_to ? gw.el("div", { class: "muted", text: "dispatched to " + c.dispatched_to }) : null,
      snap ? gw.el("img", { class: "mthumb", src: snap, alt: "Snapshot (people blurred)", loading: "lazy" }) : null,
      clipSlot(item),
      gw.el("div", { class: "mbuttons" },
        button("Acknowledge", "ack", () => act(item, "acknowledge", {}, msg), st === "open"),
        button("On scene", "onscene", () => onScene(item, msg), canOnScene)),
      gw.el("div", { class: "mresolve" }, note,
        button("Handled", "resolve-handled", () => act(item, "resolve", { outcome: "handled", note: note.value }, msg), canResolve),
        button("False alarm", "resolve-false", () => act(item, "resolve", { outcome: "false_alarm", note: note.value }, msg), canResolve)),
      msg);
  }

  function render() {
    const open = [...items.values()].filter((i) => i.state !== "resolved")
      .sort((a, b) => (a.raised_at < b.raised_at ? 1 : -1));
    // keep a card whose note is being typed in: replace only cards that changed
    const list = $("cases");
    const keep = new Map([...list.children].map((li) => [li.dataset.id, li]));
    const cards = open.map((i) => {
      const old = keep.get(i.id);
      if (old && old.dataset.sig === sig(i)) return old;
      const fresh = card(i);
      fresh.dataset.sig = sig(i);
      return fresh;
    });
    list.replaceChildren(...cards);
    for (const [id, box] of clips) {
      if (!open.some((i) => i.id === id)) {
        box.stopPlayer();
        clips.delete(id);
      }
    }
    $("empty").hidden = cards.length > 0;
    gw.tickDeadlines();
  }

  const sig = (i) => [i.state, i.count, i.case && i.case.version, i.alert_state].join("|");

  function b64ToBytes(b64) {
    const pad = "=".repeat((4 - (b64.length % 4)) % 4);
    const raw = atob((b64 + pad).replace(/-/g, "+").replace(/_/g, "/"));
    return Uint8Array.from(raw, (ch) => ch.charCodeAt(0));
  }

  async function subscribe() {
    const status = $("push-status");
    try {
      if (!("serviceWorker" in navigator) || !("PushManager" in window)) {
        throw new Error("this browser cannot receive push notifications");
      }
      const key = gw.config.vapid_public_key;
      if (!key) throw new Error("push notifications are not set up on this server");
      if ((await Notification.requestPermission()) !== "granted") {
        throw new Error("notifications are blocked for this site");
      }
      const reg = await navigator.serviceWorker.ready;
      const sub = (await reg.pushManager.getSubscription()) ||
        (await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: b64ToBytes(key) }));
      await gw.api("/api/push/subscribe", { method: "POST", body: sub.toJSON() });
      gw.flash(status, "This phone will get notifications for your grid.");
    } catch (e) {
      gw.flash(status, "Not subscribed: " + e.message, true);
    }
  }

  // A stored subscription expires (notify.push_subscription_ttl_days) unless registered again:
  // renew this phone's quietly on every visit, without asking for anything.
  async function renewSubscription() {
    try {
      if (!("serviceWorker" in navigator) || !("PushManager" in window)) return;
      if (!gw.config.vapid_public_key || Notification.permission !== "granted") return;
      const reg = await navigator.serviceWorker.ready;
      const sub = await reg.pushManager.getSubscription();
      if (sub) await gw.api("/api/push/subscribe", { method: "POST", body: sub.toJSON() });
    } catch (e) {
      // not fatal: the button subscribes again
    }
  }

  async function main() {
    if ("serviceWorker" in navigator) {
      navigator.serviceWorker.register("/m/sw.js", { scope: "/m/" }).catch(() => null);
    }
    try {
      await gw.loadMe();
    } catch (e) {
      const offline = !navigator.onLine || !(e && e.message === "not logged in");
      gw.flash($("conn"), offline ? "offline" : "not logged in", true);
      $("empty").textContent = offline
        ? "Offline: your grid's cases show again when the phone is back online."
        : "Log in to see your grid's cases.";
      window.addEventListener("online", () => location.reload(), { once: true });
      return;
    }
    gw.header();
    await gw.loadConfig();
    const g = gw.config.grids.find((x) => x.id === gw.me.grid);
    $("grid-name").textContent = g ? g.name : (gw.me.grid || "all grids");
    $("subscribe").addEventListener("click", subscribe);
    renewSubscription();
    gw.feed({
      onStatus: (s) => gw.flash($("conn"), s, s !== "live"),
      onSnapshot: (all) => { items.clear(); all.forEach((i) => items.set(i.id, i)); render(); },
      onItem: (i) => { items.set(i.id, i); render(); },
    });
  }
  main();
})();
