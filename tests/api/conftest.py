"""Fixtures of the API tests: a real ``AuthStore`` in a temporary directory, the in-memory
backend harness (``harness.py`` beside this file; importlib import mode does not put test
folders on ``sys.path``, so this conftest does), the app and a logged-in client."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from harness import BTC_ASKS, BTC_BIDS, MemoryBackend

from pysrc.api.app import create_app
from pysrc.api.auth import ADMIN, AuthStore

PASSWORD = "correct-horse-battery"



@pytest.fixture(scope="session")
def _auth_file(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    # scrypt costs ~0.1 s per hash on purpose: hash once per session, copy the file per test.
    d = tmp_path_factory.mktemp("auth")
    AuthStore(d).open(PASSWORD)
    return (d / "auth.json").read_bytes()


@pytest.fixture()
def auth(tmp_path: Path, _auth_file: bytes) -> AuthStore:
    (tmp_path / "auth.json").write_bytes(_auth_file)
    store = AuthStore(tmp_path, token_ttl_s=600)
    assert store.open() is None  # loaded, nothing generated
    return store


@pytest.fixture()
def backend() -> MemoryBackend:
    b = MemoryBackend()
    b.set_book("BTCUSDT", BTC_BIDS, BTC_ASKS)
    return b


@pytest.fixture()
def app(backend: MemoryBackend, auth: AuthStore) -> FastAPI:
    return create_app(backend, auth, cors_origins=["http://dash.example"], rate_limit_per_minute=100_000)


@pytest.fixture()
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:  # runs the lifespan (the WebSocket hub)
        yield c


@pytest.fixture()
def token(auth: AuthStore) -> str:
    return auth.issue(auth.users[ADMIN])


@pytest.fixture()
def authed(client: TestClient, token: str) -> TestClient:
    client.headers["Authorization"] = f"Bearer {token}"
    return client
