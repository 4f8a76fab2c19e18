"""Loading the configuration: defaults, then YAML, then the environment, then the command line.

* YAML: one file with the four sections (``settings``, ``strategies``, ``symbols``,
  ``risk_limits``) or a directory holding ``settings.yaml``, ``strategies.yaml``,
  ``symbols.yaml`` and ``risk_limits.yaml`` (each either the section's body or a mapping with
  the section name as its only key).
* ``${VAR}`` and ``${VAR:-default}`` inside any YAML string are replaced from the environment; a
  missing variable without a default is an error naming the key that used it.
* Environment variables in :data:`ENV_VARS` override the file (``DATABASE_URL``,
  ``BYBIT_API_KEY``...); command-line options override both.
* Everything is validated against :mod:`pysrc.config.schema`; the first problem raises
  :class:`ConfigError` with the dotted key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from pysrc.config.schema import ConfigError, validate

SECTIONS = ("settings", "strategies", "symbols", "risk_limits")

# Environment variable -> dotted key it sets.
ENV_VARS: dict[str, str] = {
    "BOT_MODE": "settings.mode",
    "BOT_DATA_DIR": "settings.data_dir",
    "DATABASE_URL": "settings.database_url",
    "REDIS_URL": "settings.redis_url",
    "BOT_API_HOST": "settings.api.host",
    "BOT_API_PORT": "settings.api.port",
    "BYBIT_API_KEY": "settings.exchange.api_key",
    "BYBIT_API_SECRET": "settings.exchange.api_secret",
    "BYBIT_REST_URL": "settings.exchange.rest_url",
    "BYBIT_WS_PUBLIC_URL": "settings.exchange.ws_public_url",
    "BYBIT_WS_PRIVATE_URL": "settings.exchange.ws_private_url",
    "BOT_SYMBOLS": "symbols",
    "BOT_LOG_LEVEL": "settings.logging.level",
    "BOT_LOG_FORMAT": "settings.logging.format",
}

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _substitute(node: Any, env: Mapping[str, str], key: str) -> Any:
    if isinstance(node, str):

        def repl(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(key or "<root>", f"environment variable {name} is not set (write ${{{name}:-default}} for a default)")

        return _VAR.sub(repl, node)
    if isinstance(node, Mapping):
        return {k: _substitute(v, env, f"{key}.{k}" if key else str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, env, f"{key}[{i}]") for i, v in enumerate(node)]
    return node


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), f"not valid YAML: {exc}") from exc


def read_files(path: Path) -> dict[str, Any]:
    """The raw (unvalidated) sections from a file or a directory of per-section files."""
    if path.is_dir():
        raw: dict[str, Any] = {}
        for section in SECTIONS:
            f = path / f"{section}.yaml"
            if f.is_file():
                body = _read_yaml(f)
                if isinstance(body, Mapping) and set(body) == {section}:
                    body = body[section]
                raw[section] = body
        return raw
    body = _read_yaml(path)
    if body is None:
        return {}
    if not isinstance(body, Mapping):
        raise ConfigError(str(path), "expected a mapping with the sections " + ", ".join(SECTIONS))
    return dict(body)


def _set(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for p in parts[:-1]:
        child = node.get(p)
        if not isinstance(child, dict):
            child = {} if child is None else dict(child) if isinstance(child, Mapping) else child
            node[p] = child
        node = child
    node[parts[-1]] = value


def load(
    path: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Defaults <- YAML at ``path`` <- environment <- ``overrides`` (dotted key -> value)."""
    env = os.environ if env is None else env
    raw = _substitute(read_files(path), env, "") if path is not None else {}
    raw = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in raw.items()}
    for var, dotted in ENV_VARS.items():
        if env.get(var):
            _set(raw, dotted, env[var])
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set(raw, dotted, value)
    return Config(validate(raw))


class Config:
    """The validated configuration: ``cfg["settings.api.port"]`` or the section dicts."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def __getitem__(self, dotted: str) -> Any:
        node: Any = self.data
        for part in dotted.split("."):
            node = node[part]
        return node

    @property
    def mode(self) -> str:
        return str(self["settings.mode"])

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.data["settings"])

    def check_can_start(self, *, allow_live: bool) -> None:
        """Refuse modes that cannot run: live without the explicit flag, any exchange mode
        without API keys."""
        ex = self.data["settings"]["exchange"]
        if self.mode == "live" and not allow_live:
            raise ConfigError("settings.mode", "live trading needs the explicit --live flag")
        if self.mode in ("live", "testnet", "demo") and not (ex["api_key"] and ex["api_secret"]):
            raise ConfigError(
                "settings.exchange.api_key",
                f"mode {self.mode} needs API keys (BYBIT_API_KEY and BYBIT_API_SECRET)",
            )


__all__ = ["ENV_VARS", "SECTIONS", "Config", "ConfigError", "load", "read_files"]
