"""Console sessions and the failed-login limiter (pure logic, a hand-driven clock)."""

from __future__ import annotations

import pytest

from gridwatch.console.sessions import LoginLimiter, SessionStore, UserShares


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def store(clock: Clock, *, idle: float = 10, max_age: float = 30, n: int = 3) -> SessionStore:
    return SessionStore(idle_s=idle, max_age_s=max_age, max_sessions=n, clock=clock)


def test_session_lookup_csrf_and_logout() -> None:
    clock = Clock()
    s = store(clock)
    token, session = s.create("op-zhang", "10.0.0.1")
    assert s.get(token) is session
    assert s.get("not-a-token") is None
    assert s.get(None) is None
    assert token not in repr(session)  # the table is keyed by a hash of the token
    assert SessionStore.csrf_ok(session, session.csrf)
    assert not SessionStore.csrf_ok(session, None)
    assert not SessionStore.csrf_ok(session, "")
    assert not SessionStore.csrf_ok(session, session.csrf[:-1] + "x")
    other_token, other = s.create("op-zhang")
    assert other.csrf != session.csrf
    assert other_token != token
    assert s.delete(token) is session
    assert s.get(token) is None
    assert s.get(other_token) is other


@pytest.mark.parametrize(
    ("steps", "alive"),
    [
        ([9.9], True),  # just inside the idle timeout
        ([10.1], False),  # idle too long
        ([8, 8, 8], True),  # kept alive by use ...
        ([8, 8, 8, 8], False),  # ... but not past its 30 s lifetime
    ],
)
def test_session_expiry(steps: list[float], alive: bool) -> None:
    clock = Clock()
    s = store(clock)
    token, _ = s.create("aux-li")
    ok = True
    for dt in steps:
        clock.t += dt
        ok = s.get(token) is not None
    assert ok is alive
    assert (len(s) == 1) is alive  # an expired session leaves the table


def test_session_table_is_bounded_lru() -> None:
    clock = Clock()
    s = store(clock, n=3)
    tokens = [s.create(f"u{i}")[0] for i in range(3)]
    clock.t += 1
    assert s.get(tokens[0]) is not None  # u0 is now the most recently used
    t4, _ = s.create("u3")
    assert len(s) == 3
    assert s.evicted == 1
    assert s.get(tokens[1]) is None  # the least recently used one left
    assert s.get(tokens[0]) is not None
    assert s.get(t4) is not None


def test_alive_and_touch_for_long_lived_feeds() -> None:
    clock = Clock()
    s = store(clock)
    token, session = s.create("op")
    clock.t += 9
    s.touch(session)  # an open wall counts as activity
    clock.t += 9
    assert s.alive(session)
    s.delete(token)
    assert not s.alive(session)  # logged out: the feed ends too


def test_login_limiter_per_key_sliding_window() -> None:
    clock = Clock()
    lim = LoginLimiter(max_failures=3, window_s=60, clock=clock)
    keys = ("user:aux-li", "ip:10.0.0.9")
    for _ in range(3):
        assert lim.retry_after(*keys) == 0
        lim.failed(*keys)
        clock.t += 10
    # 3 failures at t=0, 10, 20; now t=30: blocked until the first leaves the window (t=60)
    assert lim.retry_after(*keys) == pytest.approx(30)
    assert lim.retry_after("user:other", "ip:10.0.0.9") == pytest.approx(30)  # same address
    assert lim.retry_after("user:other", "ip:10.0.0.10") == 0
    assert lim.blocked == 2
    clock.t = 1000 + 60.5
    assert lim.retry_after(*keys) == 0  # one failure left the window
    lim.succeeded("user:aux-li")
    assert lim.retry_after("user:aux-li") == 0


def test_login_limiter_is_bounded() -> None:
    lim = LoginLimiter(max_failures=1, window_s=60, max_keys=2, clock=Clock())
    for k in ("a", "b", "c"):
        lim.failed(k)
    assert lim.retry_after("a") == 0  # evicted: the table holds at most 2 keys
    assert lim.retry_after("c") > 0


def test_login_limiter_counts_attempts_in_flight() -> None:
    """A burst: every reserved attempt counts until released, so no more than max_failures
    passwords are ever being checked for one key at once."""
    clock = Clock()
    lim = LoginLimiter(max_failures=3, window_s=60, clock=clock)
    keys = ("user:aux-li", "ip:10.0.0.9")
    assert [lim.acquire(*keys) for _ in range(5)] == [0, 0, 0, 1.0, 1.0]
    for _ in range(3):
        lim.release(*keys)
        lim.failed(*keys)
    assert lim.acquire(*keys) == pytest.approx(60)  # now three real failures
    lim2 = LoginLimiter(max_failures=1, window_s=60, clock=clock)
    assert lim2.acquire("k") == 0
    lim2.release("k")
    lim2.succeeded("k")
    assert lim2.acquire("k") == 0  # a success releases its place


def test_user_shares_cap_per_user_and_track_sessions() -> None:
    shares: UserShares[str] = UserShares(2)
    assert shares.reserve("li", "s1", "a")
    assert shares.reserve("li", "s2", "b")
    assert not shares.reserve("li", "s1", "c")
    assert shares.reserve("wang", "s3", "d")
    assert shares.refused == 1
    shares.replace("a", "a2")
    assert sorted(shares.of_session("s1")) == ["a2"]
    shares.discard("b")
    assert shares.count("li") == 1
    assert shares.reserve("li", "s1", "c")
