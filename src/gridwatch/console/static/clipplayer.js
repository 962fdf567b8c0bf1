/* An alert's evidence clip, played where people look (the alert page, the phone view).
 *
 * window.gwClipPlayer(box, {url, dueAt, note}) fills `box` with a <video controls
 * preload="metadata"> of the clip (the server answers HTTP ranges, so it seeks without loading
 * it all), a bar under it with the onset marked (X-Gw-Onset: seconds into the clip) and where
 * the video is, and a "Jump to onset" button. `dueAt`: when the clip should be stored (ms; the
 * alert's time plus alerts.clips.post_s): until then the server answers 404, and the player
 * says "clip in N s" and asks again, a few times after it. `note(variant)`: the text shown
 * once the clip is there (full clips are audited; blurred ones say so).
 *
 * The first request asks for one byte (Range: bytes=0-0): its headers say the variant and the
 * onset, and a refusal has the server's reason. The console keeps the clip a short while, so
 * the video's own range requests do not fetch it again.
 */
(function () {
  "use strict";
  const RETRY_S = 5;
  const TRIES = 4;
  const GIVE_UP_MS = 120000;

  window.gwClipPlayer = function (box, opts) {
    const gw = window.gw;
    const video = gw.el("video", { class: "clip-video", controls: true, preload: "metadata", playsinline: true });
    const mark = gw.el("span", { class: "clip-onset", title: "Onset: when the alert was raised" });
    const pos = gw.el("span", { class: "clip-pos" });
    const track = gw.el("div", { class: "clip-track", title: "Click to seek" }, pos, mark);
    const jump = gw.el("button", { type: "button", class: "clip-jump", disabled: true, text: "Jump to onset" });
    const status = gw.el("span", { class: "clip-status msg", role: "status" });
    box.replaceChildren(
      gw.el("div", { class: "clip-frame" }, video),
      track,
      gw.el("div", { class: "clip-tools" }, jump, status));
    box.hidden = false;
    mark.hidden = true;
    video.hidden = true;
    track.hidden = true;
    let onset = null;
    let tries = 0;
    let timer = null;
    let note = "";

    function say(text, bad) {
      status.textContent = text;
      status.classList.toggle("bad", !!bad);
    }

    function place() {
      const d = video.duration;
      if (!(d > 0) || !isFinite(d)) return;
      pos.style.width = Math.min(100, (100 * video.currentTime) / d) + "%";
      if (onset !== null) {
        mark.style.left = Math.min(100, (100 * onset) / d) + "%";
        mark.hidden = false;
      }
    }

    function later(seconds, what, fn) {
      clearTimeout(timer);
      let left = Math.max(1, Math.round(seconds));
      const tick = () => {
        if (left <= 0) {
          fn();
          return;
        }
        say(what(left));
        left -= 1;
        timer = setTimeout(tick, 1000);
      };
      tick();
    }

    async function load() {
      say(tries ? "asking again…" : "loading the clip…");
      let r;
      try {
        r = await fetch(opts.url, { credentials: "same-origin", headers: { Range: "bytes=0-0" } });
      } catch (e) {
        if (tries++ < TRIES) later(RETRY_S, (n) => "offline? trying again in " + n + " s", load);
        else say("The clip could not be loaded: " + e.message, true);
        return;
      }
      if (r.status === 401) {
        gw.toLogin();
        return;
      }
      if (r.status === 404) {
        const now = Date.now();
        const due = opts.dueAt ? Math.ceil((opts.dueAt - now) / 1000) : 0;
        if (due > 0) {
          later(Math.min(due, 180), (n) => "clip in " + n + " s", load);
        } else if (tries < TRIES && !(opts.dueAt && now - opts.dueAt > GIVE_UP_MS)) {
          tries += 1;
          later(RETRY_S, (n) => "clip in " + n + " s", load);
        } else {
          say("No clip of this alert is stored.");
          box.classList.add("clip-none");
        }
        return;
      }
      if (!r.ok) {
        let text = r.statusText;
        let code = "";
        try {
          const body = await r.json();
          text = body.error || text;
          code = body.code || "";
        } catch (e) { /* not JSON */ }
        if ((code === "timeout" || code === "busy" || code === "unavailable") && tries++ < TRIES) {
          later(RETRY_S, (n) => text + "; trying again in " + n + " s", load);
        } else {
          say("The clip could not be loaded: " + text, true);
        }
        return;
      }
      if (r.body) r.body.cancel().catch(() => null);
      const o = parseFloat(r.headers.get("X-Gw-Onset"));
      onset = isFinite(o) && o >= 0 ? o : null;
      video.dataset.onset = onset === null ? "" : String(onset);
      video.dataset.variant = r.headers.get("X-Gw-Variant") || "";
      note = opts.note ? opts.note(video.dataset.variant) : "";
      jump.disabled = onset === null;
      say(onset === null ? note : note + (note ? " " : "") + "Onset at " + onset.toFixed(1) + " s.");
      video.hidden = false;
      track.hidden = false;
      video.src = opts.url;
    }

    video.addEventListener("loadedmetadata", place);
    video.addEventListener("durationchange", place);
    video.addEventListener("timeupdate", place);
    video.addEventListener("seeked", place);
    video.addEventListener("error", () => {
      const e = video.error;
      say("The clip could not be played" + (e && e.message ? ": " + e.message : "") + ".", true);
    });
    jump.addEventListener("click", () => {
      if (onset === null) return;
      video.currentTime = onset;
    });
    track.addEventListener("click", (ev) => {
      const d = video.duration;
      if (!(d > 0) || !isFinite(d)) return;
      const rect = track.getBoundingClientRect();
      video.currentTime = Math.max(0, Math.min(1, (ev.clientX - rect.left) / rect.width)) * d;
    });
    load();
    return {
      video: video,
      stop: () => { // the box is going away: no more retries, and the video lets go of the clip
        clearTimeout(timer);
        video.pause();
        video.removeAttribute("src");
        video.load();
      },
    };
  };
})();
