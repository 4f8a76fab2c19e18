"""Users, password hashes and JWT access tokens for the API.

* Passwords are hashed with scrypt (stdlib ``hashlib``; n=2**14, r=8, p=1, 16-byte salt), stored
  as ``scrypt$n$r$p$salt$hash`` and compared in constant time.
* The admin's password comes from ``BOT_ADMIN_PASSWORD`` or, on the first start without it, is
  generated, stored hashed and returned once so the caller can print it.
* Tokens are HS256 JWTs (PyJWT) with ``sub``, ``iat``, ``exp`` and a ``pwv`` (password version):
  changing the password invalidates every older token.
* State lives in ``<data_dir>/auth.json`` (0600): the signing key and the users. It is written
  atomically (temp file + rename) so a crash never leaves half a file.
* Verified tokens are remembered (a bounded LRU of token -> claims): checking the signature is
  the largest single cost of an authenticated API request, and a client sends the same token on
  every request. A remembered token is still checked on every use for expiry and against the
  user's current password version, so nothing a fresh verification would refuse gets through.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
ADMIN = "admin"
MIN_PASSWORD = 8
VERIFIED_CACHE = 1024


class AuthError(Exception):
    """Bad credentials or token; the message never says which part was wrong."""


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=32
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


@dataclass(slots=True)
class User:
    username: str
    password_hash: str
    password_version: int = 1


class AuthStore:
    """Users and the token signing key, persisted under the data directory."""

    def __init__(self, data_dir: Path, token_ttl_s: float = 3600.0) -> None:
        self.path = Path(data_dir) / "auth.json"
        self.token_ttl_s = token_ttl_s
        self.users: dict[str, User] = {}
        self.key = ""
        self._verified: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def open(self, admin_password: str | None = None) -> str | None:
        """Load or create the store. Returns a newly generated admin password (to print once),
        or None when one was configured or already existed. A configured password replaces the
        stored one when they differ."""
        generated: str | None = None
        if self.path.is_file():
            data = json.loads(self.path.read_text())
            self.key = data["key"]
            self.users = {u["username"]: User(**u) for u in data["users"]}
        else:
            self.key = secrets.token_urlsafe(48)
        admin = self.users.get(ADMIN)
        if admin_password:
            if admin is None or not verify_password(admin_password, admin.password_hash):
                version = admin.password_version + 1 if admin else 1
                self.users[ADMIN] = User(ADMIN, hash_password(admin_password), version)
        elif admin is None:
            generated = secrets.token_urlsafe(12)
            self.users[ADMIN] = User(ADMIN, hash_password(generated))
        self._save()
        return generated

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        users = [
            {"username": u.username, "password_hash": u.password_hash, "password_version": u.password_version}
            for u in self.users.values()
        ]
        body = {"key": self.key, "users": users}
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(body, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    # ---- credentials and tokens -------------------------------------------------------------

    def login(self, username: str, password: str) -> str:
        user = self.users.get(username)
        # Hash even for an unknown user, so timing does not tell which part was wrong.
        ok = verify_password(password, user.password_hash if user else hash_password("x"))
        if user is None or not ok:
            raise AuthError("invalid username or password")
        return self.issue(user)

    def issue(self, user: User, now: float | None = None) -> str:
        now = time.time() if now is None else now
        claims = {"sub": user.username, "iat": int(now), "exp": int(now + self.token_ttl_s),
                  "pwv": user.password_version}
        return jwt.encode(claims, self.key, algorithm="HS256")

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims; AuthError for a bad, expired or superseded token."""
        claims = self._verified.get(token)
        if claims is not None:
            self._verified.move_to_end(token)
            if claims["exp"] <= time.time():
                del self._verified[token]
                raise AuthError("invalid or expired token")
        else:
            try:
                claims = jwt.decode(token, self.key, algorithms=["HS256"],
                                    options={"require": ["sub", "exp", "iat"]})
            except jwt.PyJWTError as exc:
                raise AuthError("invalid or expired token") from exc
        user = self.users.get(str(claims.get("sub")))
        if user is None or claims.get("pwv") != user.password_version:
            self._verified.pop(token, None)
            raise AuthError("invalid or expired token")
        if token not in self._verified:
            self._verified[token] = claims
            if len(self._verified) > VERIFIED_CACHE:
                self._verified.popitem(last=False)
        return dict(claims)

    def change_password(self, username: str, old: str, new: str) -> None:
        user = self.users.get(username)
        if user is None or not verify_password(old, user.password_hash):
            raise AuthError("invalid username or password")
        if len(new) < MIN_PASSWORD:
            raise ValueError(f"the new password must have at least {MIN_PASSWORD} characters")
        self.users[username] = User(username, hash_password(new), user.password_version + 1)
        self._save()


__all__ = ["ADMIN", "AuthError", "AuthStore", "User", "hash_password", "verify_password"]
