"""``python -m pysrc.bot run`` refuses what cannot run with a clear message and exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def run(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    full_env = {**os.environ, **(env or {})}
    for var in ("BOT_MODE", "BYBIT_API_KEY", "BYBIT_API_SECRET"):
        if env is None or var not in env:
            full_env.pop(var, None)
    return subprocess.run([sys.executable, "-P", "-m", "pysrc.bot", *args, "--data-dir", str(tmp_path / "data")],
                          cwd=tmp_path, env=full_env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("yaml", "key"),
    [
        ("settings: {api: {port: nope}}", "settings.api.port"),
        ("settings: {moed: paper}", "settings.moed"),
        ("risk_limits: {max_daily_loss: 0.9}", "risk_limits.max_daily_loss"),
        ("strategies: {orderbook_scalper: {params: {min_confidence: 7}}}", "strategies.orderbook_scalper.params.min_confidence"),
        ("strategies: {teleport: {}}", "strategies.teleport"),
    ],
)
def test_a_bad_configuration_names_the_key(tmp_path: Path, yaml: str, key: str) -> None:
    cfg = tmp_path / "bot.yaml"
    cfg.write_text(yaml + "\n")
    p = run(tmp_path, "--config", str(cfg))
    assert p.returncode == 2, p.stderr
    assert f"configuration error: {key}:" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr


def test_live_needs_the_flag_and_keys(tmp_path: Path) -> None:
    p = run(tmp_path, "--mode", "live", env={"BYBIT_API_KEY": "k", "BYBIT_API_SECRET": "s"})
    assert p.returncode == 2 and "--live" in p.stderr, p.stderr
    p = run(tmp_path, "--mode", "testnet")
    assert p.returncode == 2 and "API keys" in p.stderr, p.stderr


def test_an_api_port_in_use_fails_the_start_cleanly(tmp_path: Path) -> None:
    """The port is taken before anything else starts: exit 1 with a message naming the setting,
    no traceback, and no local exchange or database left running."""
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        p = run(tmp_path, "--api-port", str(port))
    assert p.returncode == 1, p.stderr
    assert f"the API cannot listen on 127.0.0.1:{port}" in p.stderr and "--api-port" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr + p.stdout
    assert not (tmp_path / "data" / "postgres").exists(), "databases started before the port check"
