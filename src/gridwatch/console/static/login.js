/* The login form: JSON to POST /login, then on to where the user was going. */
(function () {
  "use strict";
  const form = document.getElementById("login");
  const error = document.getElementById("error");
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    const next = new URLSearchParams(location.search).get("next") || "";
    let r;
    try {
      r = await fetch("/login", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({
          name: document.getElementById("name").value.trim(),
          password: document.getElementById("password").value,
          next: next,
        }),
      });
    } catch (e) {
      error.textContent = "The console cannot be reached.";
      return;
    }
    const data = await r.json().catch(() => ({}));
    if (r.ok) {
      location.href = data.next || "/";
    } else if (r.status === 429) {
      error.textContent = "Too many failed attempts. Try again in a few minutes.";
    } else {
      error.textContent = data.error === "wrong name or password"
        ? "Wrong name or password." : (data.error || "Login failed.");
    }
  });
})();
