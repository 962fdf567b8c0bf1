/* The "Live" button of a <video>: starts and stops window.gridwatchLive (static/live.js, the
 * WebRTC player) for one camera. The session ({pc, stop(), ready}) is kept on the video element
 * (video.gwLive) so tests and other scripts can reach its RTCPeerConnection (video.gwLive.pc). */
(function () {
  "use strict";
  window.gwLivePlayer = function (video, button, status, cameraId) {
    function say(text, bad) {
      if (status) {
        status.textContent = text;
        status.classList.toggle("bad", !!bad);
      }
    }
    async function stop() {
      const s = video.gwLive;
      video.gwLive = null;
      button.textContent = "Live";
      if (s && typeof s.stop === "function") {
        try {
          await Promise.resolve(s.stop());
        } catch (e) {
          /* already gone */
        }
      }
    }
    async function start() {
      if (!window.gridwatchLive || typeof window.gridwatchLive.start !== "function") {
        say("live video is not available on this console", true);
        return;
      }
      button.disabled = true;
      say("connecting…");
      try {
        const session = await Promise.resolve(
          window.gridwatchLive.start(video, cameraId(), window.gw.me.csrf));
        video.gwLive = session;
        button.textContent = "Stop";
        if (session && session.ready) await session.ready;
        say("live");
      } catch (e) {
        await stop();
        say("live video failed: " + (e && e.message ? e.message : e), true);
      } finally {
        button.disabled = false;
      }
    }
    button.addEventListener("click", async () => {
      if (video.gwLive) {
        await stop();
        say("");
      } else {
        await start();
      }
    });
    video.addEventListener("gridwatch-live-error", (ev) => {
      say("live video: " + (ev.detail && ev.detail.message ? ev.detail.message : "failed"), true);
    });
    window.addEventListener("pagehide", stop);
    return { start: start, stop: stop };
  };
})();
