/* gridwatch live view: a WebRTC player for one camera (server side: gridwatch/console/live.py).
 *
 *   const live = window.gridwatchLive.start(videoEl, cameraId, csrfToken);
 *   live.ready.then(...).catch(err => show(err.message));   // optional
 *   live.stop();                                             // hang up
 *
 * Non-trickle: the offer is posted once ICE gathering is complete, so one POST sets the call up.
 * No STUN server: the console's viewers are on its own network and it must work offline.
 * Errors (unknown camera, camera unreachable, not your grid...) reject `ready` with the
 * server's message and are also dispatched on the video element as a "gridwatch-live-error"
 * CustomEvent (detail: {message, status}). No dependencies, no build step.
 */
(function () {
  "use strict";

  var GATHER_TIMEOUT_MS = 3000; // post what we have if gathering never completes
  var OFFER_TIMEOUT_MS = 15000; // the server answers within its own timeouts (open 5 s, SDP 10 s)

  function gatheringComplete(pc) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise(function (resolve) {
      var timer = setTimeout(done, GATHER_TIMEOUT_MS);
      function done() {
        clearTimeout(timer);
        pc.removeEventListener("icegatheringstatechange", check);
        resolve();
      }
      function check() {
        if (pc.iceGatheringState === "complete") done();
      }
      pc.addEventListener("icegatheringstatechange", check);
    });
  }

  function liveUrl(cameraId, rest) {
    return "/api/live/" + encodeURIComponent(cameraId) + "/" + rest;
  }

  function start(videoEl, cameraId, csrfToken) {
    var pc = new RTCPeerConnection({ iceServers: [] });
    var session = null;
    var stopped = false;
    var abort = new AbortController();

    videoEl.muted = true; // autoplay without a gesture needs muted; there is no audio anyway
    videoEl.playsInline = true;
    videoEl.autoplay = true;

    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addEventListener("track", function (ev) {
      videoEl.srcObject = ev.streams && ev.streams[0] ? ev.streams[0] : new MediaStream([ev.track]);
      var playing = videoEl.play();
      if (playing && playing.catch) playing.catch(function () {}); // stop() during play()
    });

    function fail(message, status) {
      var err = new Error(message);
      err.status = status || 0;
      videoEl.dispatchEvent(
        new CustomEvent("gridwatch-live-error", { detail: { message: message, status: err.status } })
      );
      stop();
      throw err;
    }

    function stop() {
      if (stopped) return;
      stopped = true;
      abort.abort();
      window.removeEventListener("pagehide", stop);
      try {
        pc.close();
      } catch (e) {
        /* already closed */
      }
      videoEl.srcObject = null;
      hangUp();
    }

    function hangUp() {
      if (!session) return;
      var id = session;
      session = null;
      // keepalive: the hang-up still goes out while the page unloads
      fetch(liveUrl(cameraId, encodeURIComponent(id)), {
        method: "DELETE",
        headers: { "X-CSRF-Token": csrfToken },
        credentials: "same-origin",
        keepalive: true,
      }).catch(function () {});
    }
    window.addEventListener("pagehide", stop);

    var timer = setTimeout(function () {
      abort.abort();
    }, OFFER_TIMEOUT_MS);

    var ready = pc
      .createOffer()
      .then(function (offer) {
        return pc.setLocalDescription(offer);
      })
      .then(function () {
        return gatheringComplete(pc);
      })
      .then(function () {
        if (stopped) throw new Error("stopped");
        return fetch(liveUrl(cameraId, "offer"), {
          method: "POST",
          headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken },
          credentials: "same-origin",
          body: JSON.stringify({ sdp: pc.localDescription.sdp, type: pc.localDescription.type }),
          signal: abort.signal,
        });
      })
      .then(function (resp) {
        return resp
          .json()
          .catch(function () {
            return {};
          })
          .then(function (body) {
            if (!resp.ok) fail(body.error || "live view refused (HTTP " + resp.status + ")", resp.status);
            return body;
          });
      })
      .then(function (answer) {
        session = answer.session || null;
        if (stopped) {
          hangUp(); // stopped while the answer was on its way
          throw new Error("stopped");
        }
        return pc.setRemoteDescription({ sdp: answer.sdp, type: answer.type });
      })
      .catch(function (err) {
        if (err && err.name === "AbortError") err = new Error("the live view did not answer in time");
        if (!stopped) fail(err && err.message ? err.message : String(err), err && err.status);
        throw err;
      })
      .finally(function () {
        clearTimeout(timer);
      });
    ready.catch(function () {}); // callers that ignore `ready` get no unhandled rejection

    return { pc: pc, stop: stop, ready: ready };
  }

  window.gridwatchLive = { start: start };
})();
