"""Login throttling (app/login.py)."""

from __future__ import annotations

import pytest


def test_login_throttling_locks_out_after_repeated_failures():
    from app.login import ThrottledLogin

    now = [1000.0]
    login = ThrottledLogin("alice", "right", free_failures=5, first_lockout_s=2, clock=lambda: now[0])
    assert not any(login("alice", "wrong") for _ in range(5))
    assert login("alice", "right") is False and login.locked_for("alice") == pytest.approx(2)
    now[0] += 2.5
    assert login("alice", "right") is True  # the lock-out passed; success resets the count
    for _ in range(5):
        login("alice", "wrong")
    assert login("alice", "wrong") is False and login.locked_for("alice") == pytest.approx(2)  # refused unchecked
    now[0] += 2.5
    login("alice", "wrong")
    assert login.locked_for("alice") == pytest.approx(4)  # each further failure doubles the lock-out
    for name in ("bob", "carol", "dave", "erin", "frank"):
        for _ in range(4):
            login(name, "guess")
    assert login.locked_for("zoe") > 0  # password spraying over many names locks everyone out for a while
