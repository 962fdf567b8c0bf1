"""Console sessions (a server-side table) and the failed-login limiter.

Why server-side: the cookie holds only a random token, so logging out, an expiry or a
restart really ends a session (nothing signed can be replayed), and nothing about the user
travels in the cookie. The table is bounded (the least recently used session leaves first) and
keyed by a hash of the token, so a memory dump holds no usable cookie. Each session has its own
CSRF token, compared in constant time.

Both classes are pure (no I/O) and take a clock, so expiry and limits are unit-tested without
waiting. One console process holds its sessions in memory: several console instances behind a
load balancer need sticky sessions.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(slots=True)
class Session:
    """One logged-in browser."""

    user: str
    csrf: str
    created: float
    last_seen: float
    client: str = ""
    id_hash: str = field(default="", repr=False)

    @property
    def short_id(self) -> str:
        """A non-secret handle of the session for audit records (first 12 hex of its hash)."""
        return self.id_hash[:12]


class SessionStore:
    """Sessions by token, with an idle and an absolute expiry and a size bound."""

    def __init__(
        self,
        *,
        idle_s: float,
        max_age_s: float,
        max_sessions: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle_s = idle_s
        self.max_age_s = max_age_s
        self.max_sessions = max_sessions
        self.clock = clock
        self._by_hash: OrderedDict[str, Session] = OrderedDict()
        self.evicted = 0
        """Sessions ended early because the table was full."""

    def __len__(self) -> int:
        return len(self._by_hash)

    def create(self, user: str, client: str = "") -> tuple[str, Session]:
        """A new session for ``user``; returns (cookie token, session)."""
        self.sweep()
        while len(self._by_hash) >= self.max_sessions:
            self._by_hash.popitem(last=False)
            self.evicted += 1
        token = secrets.token_urlsafe(32)
        now = self.clock()
        h = _digest(token)
        s = Session(
            user=user,
            csrf=secrets.token_urlsafe(32),
            created=now,
            last_seen=now,
            client=client,
            id_hash=h,
        )
        self._by_hash[h] = s
        return token, s

    def _expired(self, s: Session, now: float) -> bool:
        return now - s.last_seen > self.idle_s or now - s.created > self.max_age_s

    def get(self, token: str | None, *, touch: bool = True) -> Session | None:
        """The live session of ``token`` (and mark it used), or None."""
        if not token:
            return None
        h = _digest(token)
        s = self._by_hash.get(h)
        if s is None:
            return None
        now = self.clock()
        if self._expired(s, now):
            del self._by_hash[h]
            return None
        if touch:
            s.last_seen = now
            self._by_hash.move_to_end(h)
        return s

    def alive(self, session: Session) -> bool:
        """Whether ``session`` is still in the table and unexpired (a long-lived live feed
        re-checks this so a logout or expiry ends it too)."""
        s = self._by_hash.get(session.id_hash)
        return s is session and not self._expired(s, self.clock())

    def touch(self, session: Session) -> None:
        if self.alive(session):
            session.last_seen = self.clock()
            self._by_hash.move_to_end(session.id_hash)

    def delete(self, token: str | None) -> Session | None:
        if not token:
            return None
        return self._by_hash.pop(_digest(token), None)

    def delete_user(self, user: str) -> int:
        """End every session of ``user``; how many ended."""
        doomed = [h for h, s in self._by_hash.items() if s.user == user]
        for h in doomed:
            del self._by_hash[h]
        return len(doomed)

    def sweep(self) -> int:
        """Drop expired sessions; how many were dropped."""
        now = self.clock()
        doomed = [h for h, s in self._by_hash.items() if self._expired(s, now)]
        for h in doomed:
            del self._by_hash[h]
        return len(doomed)

    @staticmethod
    def csrf_ok(session: Session, presented: str | None) -> bool:
        """Whether ``presented`` is the session's CSRF token (constant-time comparison)."""
        if not presented:
            return False
        return hmac.compare_digest(session.csrf.encode(), presented.encode())


class LoginLimiter:
    """Counts failed logins per key (user name, client address) in a sliding window.

    A key with ``max_failures`` failures inside ``window_s`` is blocked until the oldest of
    them leaves the window: a password-guessing run gets a few tries per window, per name and
    per address, whatever it rotates. The table is bounded (oldest keys leave first).
    """

    def __init__(
        self,
        *,
        max_failures: int,
        window_s: float,
        max_keys: int = 10000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_keys = max_keys
        self.clock = clock
        self._fails: OrderedDict[str, deque[float]] = OrderedDict()
        self.blocked = 0
        """Attempts refused because a key was over the limit."""

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._fails.get(key)
        if q is None:
            return deque()
        while q and now - q[0] >= self.window_s:
            q.popleft()
        if not q:
            del self._fails[key]
        return q

    def retry_after(self, *keys: str) -> float:
        """Seconds until an attempt for ``keys`` is allowed again; 0 when allowed now."""
        now = self.clock()
        wait = 0.0
        for key in keys:
            q = self._recent(key, now)
            if len(q) >= self.max_failures:
                wait = max(wait, self.window_s - (now - q[-self.max_failures]))
        if wait > 0:
            self.blocked += 1
        return wait

    def failed(self, *keys: str) -> None:
        now = self.clock()
        for key in keys:
            q = self._fails.get(key)
            if q is None:
                while len(self._fails) >= self.max_keys:
                    self._fails.popitem(last=False)
                q = self._fails[key] = deque(maxlen=self.max_failures * 2)
            q.append(now)
            self._fails.move_to_end(key)

    def succeeded(self, *keys: str) -> None:
        """A correct login clears its user name's count (not the address's: one good
        password must not reset a guessing run from the same address on other names)."""
        for key in keys:
            self._fails.pop(key, None)
