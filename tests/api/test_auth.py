"""Password hashing, the admin bootstrap and JWT tokens (expiry, tampering, password changes)."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import jwt
import pytest

from pysrc.api.auth import ADMIN, AuthError, AuthStore, hash_password, verify_password


def test_hashes_verify_and_differ_per_salt() -> None:
    a, b = hash_password("correct horse"), hash_password("correct horse")
    assert a != b and verify_password("correct horse", a) and verify_password("correct horse", b)
    assert not verify_password("wrong", a)
    assert not verify_password("x", "garbage") and not verify_password("x", "md5$1$2$3$4$5")


def test_generated_admin_password_is_returned_once_and_stored_hashed(tmp_path: Path) -> None:
    store = AuthStore(tmp_path)
    pw = store.open()
    assert pw is not None and len(pw) >= 12
    text = (tmp_path / "auth.json").read_text()
    assert pw not in text and "scrypt$" in text
    assert stat.S_IMODE((tmp_path / "auth.json").stat().st_mode) == 0o600
    again = AuthStore(tmp_path)
    assert again.open() is None  # not generated twice
    again.verify(again.login(ADMIN, pw))


def test_configured_password_wins_and_supersedes_old_tokens(tmp_path: Path) -> None:
    store = AuthStore(tmp_path)
    assert store.open("first-password") is None
    old = store.login(ADMIN, "first-password")
    store2 = AuthStore(tmp_path)
    store2.open("second-password")
    with pytest.raises(AuthError):
        store2.verify(old)
    with pytest.raises(AuthError):
        store2.login(ADMIN, "first-password")
    store2.verify(store2.login(ADMIN, "second-password"))


def test_bad_tokens_and_credentials(tmp_path: Path) -> None:
    store = AuthStore(tmp_path, token_ttl_s=60)
    store.open("s3cret-pass")
    with pytest.raises(AuthError, match="invalid username or password"):
        store.login(ADMIN, "nope")
    with pytest.raises(AuthError, match="invalid username or password"):
        store.login("mallory", "s3cret-pass")
    expired = store.issue(store.users[ADMIN], now=time.time() - 3600)
    with pytest.raises(AuthError):
        store.verify(expired)
    forged = jwt.encode({"sub": ADMIN, "iat": int(time.time()), "exp": int(time.time()) + 60, "pwv": 1}, "another-signing-key-of-at-least-32-bytes", algorithm="HS256")
    with pytest.raises(AuthError):
        store.verify(forged)
    with pytest.raises(AuthError):
        store.verify("not.a.token")


def test_change_password(tmp_path: Path) -> None:
    store = AuthStore(tmp_path)
    store.open("s3cret-pass")
    token = store.login(ADMIN, "s3cret-pass")
    with pytest.raises(AuthError):
        store.change_password(ADMIN, "wrong", "new-password")
    with pytest.raises(ValueError, match="at least"):
        store.change_password(ADMIN, "s3cret-pass", "short")
    store.change_password(ADMIN, "s3cret-pass", "new-password")
    with pytest.raises(AuthError):
        store.verify(token)
    reopened = AuthStore(tmp_path)
    reopened.open()
    reopened.verify(reopened.login(ADMIN, "new-password"))
