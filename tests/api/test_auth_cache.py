"""The verified-token cache of ``AuthStore.verify`` never accepts what a fresh verification
would refuse: a remembered token still expires, still dies with a password change, and the
cache stays bounded."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pysrc.api import auth as auth_mod
from pysrc.api.auth import ADMIN, AuthError, AuthStore


@pytest.fixture()
def store(tmp_path: Path) -> AuthStore:
    s = AuthStore(tmp_path, token_ttl_s=60)
    s.open("s3cret-pass")
    return s


def test_remembered_token_still_expires(store: AuthStore, monkeypatch: pytest.MonkeyPatch) -> None:
    token = store.issue(store.users[ADMIN])
    assert store.verify(token)["sub"] == ADMIN
    assert token in store._verified
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 61)
    with pytest.raises(AuthError):
        store.verify(token)
    assert token not in store._verified


def test_remembered_token_dies_with_a_password_change(store: AuthStore) -> None:
    token = store.issue(store.users[ADMIN])
    store.verify(token)
    store.change_password(ADMIN, "s3cret-pass", "another-pass")
    with pytest.raises(AuthError):
        store.verify(token)


def test_claims_are_copies_and_cache_is_bounded(store: AuthStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth_mod, "VERIFIED_CACHE", 3)
    tokens = [store.issue(store.users[ADMIN], now=time.time() - i) for i in range(5)]
    for t in tokens:
        store.verify(t)["sub"] = "mallory"  # mutating the answer must not poison the cache
    assert len(store._verified) == 3
    assert all(store.verify(t)["sub"] == ADMIN for t in tokens)
