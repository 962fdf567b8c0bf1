"""Console sessions (a server-side table) and the failed-login limiter.

Why server-side: the cookie holds only a random token, so logging out, an expiry or a
restart really ends a session (nothing signed can be replayed), and nothing about the user
travels in the cookie. The table is bounded (the least recently used session leaves first) and
keyed by a hash of the token, so a memory dump holds no usable cookie. Each session has its own
CSRF token, compared in constant time.

:class:`LoginLimiter` reserves an attempt *before* the password is checked (attempts in flight
count against the limit), so concurrent guesses cannot all pass the check before the first
failure is recorded. :class:`UserShares` bounds what one user may hold open at once (live
feeds, live video sessions) and remembers which session holds what, so a logout ends it.

The classes are pure (no I/O) and take a clock, so expiry and limits are unit-tested without
waiting. One console process holds its sessions in memory: several console instances behind a
load balancer need sticky sessions.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar


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

    def alive_id(self, id_hash: str) -> bool:
        """Whether the session with this hash is still in the table and unexpired."""
        s = self._by_hash.get(id_hash)
        return s is not None and not self._expired(s, self.clock())

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
        self._pending: dict[str, int] = {}
        """Attempts reserved by :meth:`acquire` and not yet released, per key."""
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

    def acquire(self, *keys: str) -> float:
        """Reserve one attempt for ``keys`` before checking the password: 0 (reserved; call
        :meth:`release` when the check is done) or the seconds to wait (nothing reserved).

        Attempts in flight count as failures until released, so ``max_failures`` concurrent
        guesses are the most that can be checked at once: the limit holds under a burst."""
        now = self.clock()
        wait = 0.0
        for key in keys:
            q = self._recent(key, now)
            if len(q) >= self.max_failures:
                wait = max(wait, self.window_s - (now - q[-self.max_failures]))
            elif len(q) + self._pending.get(key, 0) >= self.max_failures:
                wait = max(wait, 1.0)  # the attempts in flight may all fail: ask again soon
        if wait > 0:
            self.blocked += 1
            return wait
        for key in keys:
            self._pending[key] = self._pending.get(key, 0) + 1
        return 0.0

    def release(self, *keys: str) -> None:
        """End the reservation :meth:`acquire` made (then record :meth:`failed` or
        :meth:`succeeded`, with no ``await`` in between)."""
        for key in keys:
            n = self._pending.get(key, 0) - 1
            if n > 0:
                self._pending[key] = n
            else:
                self._pending.pop(key, None)

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


_T = TypeVar("_T", bound=Hashable)


class UserShares(Generic[_T]):
    """What each user holds open (live feeds, live video sessions), at most ``per_user`` each.

    Every item is held by one console session (its ``id_hash``), so a logout or an expired
    session ends exactly what that session opened. :meth:`reserve` counts an item before the
    (slow) work of opening it, so concurrent requests cannot pass the cap together.
    """

    def __init__(self, per_user: int) -> None:
        if per_user < 1:
            raise ValueError("per_user must be at least 1")
        self.per_user = per_user
        self._owner: dict[_T, tuple[str, str]] = {}
        """item -> (user, session id_hash)."""
        self.refused = 0

    def __len__(self) -> int:
        return len(self._owner)

    def count(self, user: str) -> int:
        return sum(1 for u, _ in self._owner.values() if u == user)

    def reserve(self, user: str, session_id: str, item: _T) -> bool:
        """Hold ``item`` for ``user``'s session; False (nothing held) when the user is full."""
        if item in self._owner:
            return True
        if self.count(user) >= self.per_user:
            self.refused += 1
            return False
        self._owner[item] = (user, session_id)
        return True

    def replace(self, old: _T, new: _T) -> None:
        """Hold ``new`` in place of ``old`` (a reservation that became a real session)."""
        owner = self._owner.pop(old, None)
        if owner is not None:
            self._owner[new] = owner

    def discard(self, item: _T) -> None:
        self._owner.pop(item, None)

    def of_session(self, session_id: str) -> list[_T]:
        return [it for it, (_, sid) in self._owner.items() if sid == session_id]

    def items(self) -> list[tuple[_T, str, str]]:
        """(item, user, session id_hash) of everything held."""
        return [(it, u, sid) for it, (u, sid) in self._owner.items()]
