"""The login check for ``--auth``, with throttling that slows a guesser but cannot be turned against the real user.

Gradio calls ``auth(username, password)`` for each login attempt. Two kinds of counters of failed attempts, both
decaying (half-life ``half_life_s``, an hour), so that an old burst is forgotten; an hour is long enough that a
guesser who waits out every delay still reaches the longest one (a 10-minute half-life let the count settle near a
100 s delay):

* **Per user name.** After ``free_failures`` failures under one name, that name is delayed: its attempts are refused
  unchecked for a time that doubles with each further failure (``first_delay_s`` up to ``max_delay_s``). This is
  what bounds password guessing: with a single account, only guesses under its name can ever succeed.
* **Per client address.** After ``address_free_failures`` failures from one address (over any names: someone
  guessing name and password together), each further failure from it delays the name it tried at once.

There is no counter over all names: failures under made-up names never delay the real user's name, and a correct
password is accepted whenever its name is not delayed, whichever address sent it. A delayed name's refusal says that
it is a delay and for how long (HTTP 429 with ``Retry-After``), never "Incorrect credentials.". A refusal is as quick
as a check, so attempts cannot pile up waiting connections. The client address comes from :class:`ClientAddress`
(pure ASGI middleware); behind Caddy, uvicorn takes it from X-Forwarded-For (trusted from 127.0.0.1 only).
"""

from __future__ import annotations

import contextvars
import logging
import math
import secrets
import threading
import time
from dataclasses import dataclass

logger = logging.getLogger(__name__)
CLIENT_ADDRESS: contextvars.ContextVar[str | None] = contextvars.ContextVar("kneescope_client_address", default=None)
MAX_ENTRIES = 10_000  # many invented user names or addresses: memory stays bounded


class LoginDelayed(Exception):
    """An attempt refused unchecked because its user name is delayed."""

    def __init__(self, wait_s: float):
        self.wait_s = wait_s
        super().__init__(
            f"Too many failed logins for this user name: logins for it are delayed. Try again in {math.ceil(wait_s)} s."
        )


@dataclass
class _Failures:
    score: float = 0.0  # failures, decayed
    updated: float = 0.0
    delayed_until: float = 0.0


class ThrottledLogin:
    """``auth=ThrottledLogin(user, password)`` for ``gr.Blocks.launch``."""

    def __init__(
        self,
        user: str,
        password: str,
        *,
        free_failures: int = 5,
        address_free_failures: int = 20,
        first_delay_s: float = 2.0,
        max_delay_s: float = 300.0,
        half_life_s: float = 3600.0,
        clock=time.monotonic,
    ):
        self._user = user.encode()
        self._password = password.encode()
        self.free_failures = free_failures
        self.address_free_failures = address_free_failures
        self.first_delay_s = first_delay_s
        self.max_delay_s = max_delay_s
        self.half_life_s = half_life_s
        self._clock = clock
        self._names: dict[str, _Failures] = {}
        self._addresses: dict[str, _Failures] = {}
        self._lock = threading.Lock()

    def __call__(self, username: str, password: str) -> bool:
        """Gradio's auth hook: True or False, or an HTTP 429 that says how long the name is delayed."""
        try:
            return self.attempt(username, password, CLIENT_ADDRESS.get())
        except LoginDelayed as exc:
            from fastapi import HTTPException

            raise HTTPException(429, detail=str(exc), headers={"Retry-After": str(math.ceil(exc.wait_s))}) from None

    def attempt(self, username: str, password: str, address: str | None = None) -> bool:
        """True for the right name and password; False for a wrong one; LoginDelayed while the name is delayed."""
        now = self._clock()
        wait = self.delay_left(username)
        if wait > 0:
            raise LoginDelayed(wait)
        ok = secrets.compare_digest(username.encode(), self._user) & secrets.compare_digest(
            password.encode(), self._password
        )
        with self._lock:
            if ok:
                self._names.pop(username, None)
            else:
                self._fail(username, address, now)
        return bool(ok)

    def delay_left(self, username: str) -> float:
        """Seconds until ``username`` may try again (0 when it is not delayed)."""
        with self._lock:
            entry = self._names.get(username)
            return max(0.0, entry.delayed_until - self._clock()) if entry else 0.0

    def _fail(self, username: str, address: str | None, now: float) -> None:
        name = self._bump(self._names, username, now)
        if address is not None:
            suspicious = round(self._bump(self._addresses, address, now).score) > self.address_free_failures
            if suspicious:  # a guesser cycling through names: this name gets no free failures
                name.score = max(name.score, float(self.free_failures))
        recent = round(name.score)  # five failures a few seconds apart count as five, not 4.99
        if recent >= self.free_failures:
            delay = min(self.first_delay_s * 2 ** (recent - self.free_failures), self.max_delay_s)
            name.delayed_until = now + delay
            logger.warning("login: %d recent failed attempts under one name; it is delayed %.0f s", recent, delay)

    def _bump(self, counters: dict[str, _Failures], key: str, now: float) -> _Failures:
        if len(counters) >= MAX_ENTRIES:
            self._forget_quiet(counters, now)
        entry = counters.setdefault(key, _Failures(updated=now))
        entry.score = self._decayed(entry, now) + 1.0
        entry.updated = now
        return entry

    def _decayed(self, entry: _Failures, now: float) -> float:
        return entry.score * 0.5 ** ((now - entry.updated) / self.half_life_s)

    def _forget_quiet(self, counters: dict[str, _Failures], now: float) -> None:
        """Drop the counters that have decayed to almost nothing and delay nothing; the oldest half if none have."""
        quiet = [k for k, v in counters.items() if v.delayed_until <= now and self._decayed(v, now) < 0.5]
        for key in quiet or sorted(counters, key=lambda k: counters[k].updated)[: len(counters) // 2]:
            del counters[key]


class ClientAddress:
    """Pure ASGI middleware: the client's address for the login throttle (Gradio's auth hook is not given it)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            client = scope.get("client")
            CLIENT_ADDRESS.set(client[0] if client else None)
        await self.app(scope, receive, send)
