/* The responder view's service worker: an offline shell, and Web Push notifications.
 *
 * Only the shell (the page, its script, style and icon: no user data) is cached. API answers
 * (cases, snapshots) are never cached: a phone must not show a stale case as current, nor keep
 * pictures of people. Pushes come from the notifier (gridwatch.notify), encrypted for this
 * browser; a tap opens the case. */
"use strict";
const CACHE = "gw-m-shell-v1";
const SHELL = ["/m/", "/static/console.css", "/static/common.js", "/static/m.js", "/static/icon.svg", "/m/manifest.json"];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) =>
    Promise.all(SHELL.map((url) => cache.add(url).catch(() => null)))).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

self.addEventListener("fetch", (event) => {
  const req = event.request;
  const url = new URL(req.url);
  if (req.method !== "GET" || url.origin !== self.location.origin) return;
  if (url.pathname.startsWith("/api/") || url.pathname.startsWith("/m/snapshots/")) return;
  if (req.mode === "navigate") {
    // network first: the live page; offline: the cached shell (it says it is offline)
    event.respondWith(fetch(req).catch(() => caches.match("/m/")));
    return;
  }
  if (SHELL.includes(url.pathname)) {
    event.respondWith(fetch(req).then((resp) => {
      if (resp.ok) {
        const copy = resp.clone();
        caches.open(CACHE).then((cache) => cache.put(req, copy));
      }
      return resp;
    }).catch(() => caches.match(req)));
  }
});

self.addEventListener("push", (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch (e) {
    data = { title: "gridwatch", body: event.data ? event.data.text() : "" };
  }
  event.waitUntil(self.registration.showNotification(data.title || "gridwatch alert", {
    body: data.body || "",
    tag: data.tag || undefined,
    renotify: !!data.tag,
    icon: "/static/icon.svg",
    data: { url: data.url || "/m/" },
  }));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const target = (event.notification.data && event.notification.data.url) || "/m/";
  event.waitUntil(self.clients.matchAll({ type: "window" }).then((wins) => {
    for (const w of wins) {
      if (w.url === target && "focus" in w) return w.focus();
    }
    return self.clients.openWindow(target);
  }));
});
