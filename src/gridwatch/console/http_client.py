"""The console's HTTP API as a person uses it from a script: log in, ask, log out.

``gridwatch cases export`` needs what only the console's service identity may read (the audit
stream, and pictures through the snapshot and clip services as the person), so it does not talk
to NATS for the bundle: it logs in to the console with the person's name and password (the same
bcrypt hash in ``users:`` that NATS checks) and asks ``POST /api/cases/<grid>/<id>/export``,
exactly as the console's button does. Every request is then checked, confined and audited by
the console as for the browser.
"""

from __future__ import annotations

import ssl
from types import TracebackType
from typing import Any
from urllib.parse import quote

import aiohttp

from gridwatch.config import GridwatchConfig


class ConsoleRequestError(RuntimeError):
    """The console refused (``status``, ``code`` from its JSON answer) or was unreachable
    (``status`` 0)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def console_url(config: GridwatchConfig | None) -> str | None:
    """The console's URL from the config's ``console:`` section (a wildcard listen address
    becomes 127.0.0.1); None without a config."""
    if config is None:
        return None
    s = config.console
    host = "127.0.0.1" if s.host in ("0.0.0.0", "::", "") else s.host
    if ":" in host:
        host = f"[{host}]"
    scheme = "https" if s.tls_cert_file else "http"
    return f"{scheme}://{host}:{s.port}"


async def _refusal(r: aiohttp.ClientResponse) -> ConsoleRequestError:
    text = await r.text()
    code, message = "", text.strip() or r.reason or ""
    try:
        body: Any = await r.json(content_type=None)
        if isinstance(body, dict):
            code = str(body.get("code") or "")
            message = str(body.get("error") or message)
    except ValueError:
        pass
    default = {401: "unauthorized", 403: "forbidden", 404: "not_found", 429: "busy"}
    return ConsoleRequestError(r.status, code or default.get(r.status, str(r.status)), message)


class ConsoleClient:
    """A logged-in session with the console at ``url`` (``async with``: logs out at the end).
    ``ca_file``: the CA of the console's HTTPS certificate (else the system's)."""

    def __init__(self, url: str, *, ca_file: str | None = None, timeout_s: float = 600.0):
        self.url = url.rstrip("/")
        self.ca_file = ca_file
        self.timeout_s = timeout_s
        self.csrf = ""
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ConsoleClient:
        ssl_ctx: ssl.SSLContext | bool = True
        if self.ca_file:
            ssl_ctx = ssl.create_default_context(cafile=self.ca_file)
        self._http = aiohttp.ClientSession(
            base_url=self.url,
            cookie_jar=aiohttp.CookieJar(unsafe=True),  # the console may be an IP address
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            connector=aiohttp.TCPConnector(ssl=ssl_ctx),
        )
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        http, self._http = self._http, None
        if http is None:
            return
        try:
            if self.csrf:
                async with http.post("/logout", headers={"X-CSRF-Token": self.csrf}):
                    pass
        except aiohttp.ClientError:
            pass
        finally:
            await http.close()

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            raise RuntimeError("use ConsoleClient in 'async with'")
        return self._http

    async def login(self, name: str, password: str) -> None:
        try:
            async with self.http.post("/login", json={"name": name, "password": password}) as r:
                if r.status != 200:
                    raise await _refusal(r)
                self.csrf = str((await r.json())["csrf"])
        except aiohttp.ClientError as e:
            raise ConsoleRequestError(0, "unavailable", f"cannot reach {self.url}: {e}") from e

    async def export_case(self, grid: str, case_id: str) -> tuple[bytes, dict[str, str]]:
        """The case bundle (zip bytes) and the answer's headers."""
        path = f"/api/cases/{quote(grid, safe='')}/{quote(case_id, safe='')}/export"
        try:
            async with self.http.post(path, headers={"X-CSRF-Token": self.csrf}) as r:
                if r.status != 200:
                    raise await _refusal(r)
                return await r.read(), dict(r.headers)
        except aiohttp.ClientError as e:
            raise ConsoleRequestError(0, "unavailable", f"cannot reach {self.url}: {e}") from e
