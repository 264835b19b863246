"""The login check for ``--auth``, with throttling: guessing passwords costs time.

Gradio calls ``auth(username, password)`` for each login attempt. After ``free_failures`` wrong passwords for one
user name (or four times as many over all names, against password spraying), further attempts are refused without
checking, for a lock-out that doubles with each further failure up to ``max_lockout_s``; a correct login resets the
count. A refusal is as quick as a check, so attempts cannot pile up waiting connections.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass

logger = logging.getLogger(__name__)
ANY_USER = "\0all"  # the counter of failures over every user name


@dataclass
class _Failures:
    count: int = 0
    locked_until: float = 0.0


class ThrottledLogin:
    """``auth=ThrottledLogin(user, password)`` for ``gr.Blocks.launch``."""

    def __init__(
        self,
        user: str,
        password: str,
        *,
        free_failures: int = 5,
        first_lockout_s: float = 2.0,
        max_lockout_s: float = 300.0,
        clock=time.monotonic,
    ):
        self._user = user.encode()
        self._password = password.encode()
        self.free_failures = free_failures
        self.first_lockout_s = first_lockout_s
        self.max_lockout_s = max_lockout_s
        self._clock = clock
        self._failures: dict[str, _Failures] = {}
        self._lock = threading.Lock()

    def __call__(self, username: str, password: str) -> bool:
        now = self._clock()
        with self._lock:
            if any(self._locked(key, now) for key in (username, ANY_USER)):
                return False
        ok = secrets.compare_digest(username.encode(), self._user) & secrets.compare_digest(
            password.encode(), self._password
        )
        with self._lock:
            if ok:
                self._failures.pop(username, None)
            else:
                self._fail(username, now, self.free_failures)
                self._fail(ANY_USER, now, 4 * self.free_failures)
        return bool(ok)

    def locked_for(self, username: str) -> float:
        """Seconds until ``username`` may try again (0 when not locked)."""
        now = self._clock()
        with self._lock:
            return max(0.0, *(self._failures.get(k, _Failures()).locked_until - now for k in (username, ANY_USER)))

    def _locked(self, key: str, now: float) -> bool:
        entry = self._failures.get(key)
        return entry is not None and entry.locked_until > now

    def _fail(self, key: str, now: float, free: int) -> None:
        entry = self._failures.setdefault(key, _Failures())
        entry.count += 1
        if entry.count >= free:
            lockout = min(self.first_lockout_s * 2 ** (entry.count - free), self.max_lockout_s)
            entry.locked_until = now + lockout
            logger.warning("login: %d failed attempts; further attempts refused for %.0f s", entry.count, lockout)
        if len(self._failures) > 10_000:  # many invented user names: keep memory bounded
            self._failures = {k: v for k, v in self._failures.items() if v.locked_until > now}
