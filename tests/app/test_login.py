"""Login throttling that slows a guesser but cannot be turned against the real user (issue 25, item 2)."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.fixtures.app import running_app

AUTH = ("alice", "s3cret-pass")


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


def _login(clock, **kwargs):
    from app.login import ThrottledLogin

    return ThrottledLogin(*AUTH, clock=clock, **kwargs)


def test_wrong_logins_under_made_up_names_never_delay_the_real_user(clock):
    login = _login(clock)
    for i in range(200):  # a spray from one address, then from many
        assert login.attempt(f"user{i}", "guess", "203.0.113.5" if i < 100 else f"198.51.100.{i % 50}") is False
        clock.now += 0.1
    assert login.delay_left(AUTH[0]) == 0
    assert login.attempt(*AUTH, "203.0.113.5") is True  # even from the sprayer's own address (a shared NAT)
    assert login.attempt(*AUTH, "192.0.2.1") is True


def test_a_delayed_name_is_refused_saying_for_how_long_then_the_right_password_works(clock):
    from app.login import LoginDelayed

    login = _login(clock, free_failures=5, first_delay_s=2)
    assert not any(login.attempt(AUTH[0], "wrong") for _ in range(5))
    with pytest.raises(LoginDelayed, match=r"delayed\. Try again in 2 s") as info:
        login.attempt(*AUTH)  # the right password, refused unchecked while the name is delayed
    assert info.value.wait_s == pytest.approx(2)
    clock.now += 2.01
    assert login.attempt(*AUTH) is True  # accepted once the per-name delay has passed; the count starts again
    for _ in range(5):
        login.attempt(AUTH[0], "wrong")
    clock.now += 2.01
    assert login.attempt(AUTH[0], "wrong") is False
    assert login.delay_left(AUTH[0]) == pytest.approx(4)  # each further failure doubles the delay
    clock.now += 4.01
    assert login.attempt(*AUTH) is True


def test_the_delay_is_capped_and_old_failures_decay(clock):
    login = _login(clock, free_failures=5, first_delay_s=2, max_delay_s=300, half_life_s=3600)
    for _ in range(30):
        login.attempt(AUTH[0], "wrong")
        clock.now += login.delay_left(AUTH[0]) + 0.01
    login.attempt(AUTH[0], "wrong")
    assert login.delay_left(AUTH[0]) == pytest.approx(300)  # a guesser who waits out each delay reaches the longest
    clock.now += 6 * 3600  # six half-lives later the burst is forgotten: five free failures again
    assert not any(login.attempt(AUTH[0], "wrong") for _ in range(4))
    assert login.delay_left(AUTH[0]) == 0


def test_a_guesser_cycling_names_from_one_address_gets_no_free_failures(clock):
    login = _login(clock, free_failures=5, address_free_failures=20)
    for i in range(21):
        login.attempt(f"user{i}", "guess", "203.0.113.5")
    assert login.attempt(AUTH[0], "guess", "203.0.113.5") is False
    assert login.delay_left(AUTH[0]) == pytest.approx(2)  # delayed at its first failure from that address
    clock.now += 2.01
    assert login.attempt(*AUTH, "192.0.2.1") is True
    assert login.attempt("bob", "guess", "192.0.2.1") is False and login.delay_left("bob") == 0  # other addresses


def test_memory_stays_bounded_under_invented_names(clock, monkeypatch):
    import app.login as module

    monkeypatch.setattr(module, "MAX_ENTRIES", 100)
    login = _login(clock)
    for i in range(1000):
        login.attempt(f"user{i}", "guess", f"10.0.{i // 250}.{i % 250}")
    assert len(login._names) <= 100 and len(login._addresses) <= 100


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from app.settings import AppSettings

    workdir = tmp_path_factory.mktemp("login")
    with running_app(workdir, settings=AppSettings(workdir=workdir, auth=AUTH)) as (url, _):
        yield url


def _post(url: str, name: str, password: str, address: str) -> httpx.Response:
    """A login attempt as if from ``address`` (uvicorn takes X-Forwarded-For from 127.0.0.1, as behind Caddy)."""
    data = {"username": name, "password": password}
    return httpx.post(f"{url}login", data=data, headers={"X-Forwarded-For": address}, timeout=10)


def test_over_http_a_spray_of_made_up_names_then_the_real_user_logs_in_at_once(app):
    sprayer = "203.0.113.5"
    for i in range(20):
        assert _post(app, f"intruder{i}", "guess", sprayer).status_code == 400
    assert _post(app, "late", "guess", sprayer).status_code == 400  # the sprayer's next name: no free failures
    assert _post(app, "late", "guess", sprayer).status_code == 429
    assert _post(app, "elsewhere", "guess", "198.51.100.7").status_code == 400  # other addresses keep theirs
    assert _post(app, "elsewhere", "guess", "198.51.100.7").status_code == 400
    start = time.monotonic()
    assert _post(app, *AUTH, sprayer).status_code == 200  # even from the sprayer's address (a shared NAT)
    assert _post(app, *AUTH, "192.0.2.1").status_code == 200
    assert time.monotonic() - start < 5


def test_over_http_a_delayed_name_gets_429_with_retry_after_then_gets_in(app):
    guesser, user = "192.0.2.66", "192.0.2.1"
    for _ in range(5):
        assert _post(app, AUTH[0], "guess", guesser).status_code == 400
    delayed = _post(app, *AUTH, user)  # the real user, from elsewhere, while the name is delayed
    assert delayed.status_code == 429
    assert "delayed" in delayed.json()["detail"] and "Incorrect" not in delayed.json()["detail"]
    wait = int(delayed.headers["Retry-After"])
    assert 1 <= wait <= 2
    time.sleep(wait + 0.1)
    assert _post(app, *AUTH, user).status_code == 200
