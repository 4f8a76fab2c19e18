"""The configuration's shape: every key, its type, its default and its allowed range.

One table (:data:`SCHEMA`) drives validation, defaults and the generated ``config.example.yaml``,
so an unknown or bad key is reported with its full dotted path (``settings.api.port: expected an
integer in 1..65535, got 'abc'``) and nothing else has to restate the rules.

The four top-level sections follow the plan: ``settings``, ``strategies``, ``symbols`` and
``risk_limits``. ``strategies`` and ``risk_limits`` are mappings whose keys belong to the
strategy and risk modules; here they are only checked for shape (the owning module validates its
own parameters and names the key when one is wrong).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


class ConfigError(ValueError):
    """A configuration value is missing, unknown or invalid; ``key`` is its dotted path."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


@dataclass(frozen=True, slots=True)
class Field:
    """One leaf: ``kind`` is the Python type expected after YAML parsing (str values from the
    environment are converted), ``check`` returns an error message or None."""

    kind: type | tuple[type, ...]
    default: Any
    help: str
    check: Callable[[Any], str | None] | None = None
    nullable: bool = False


def one_of(*choices: object) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        return None if v in choices else f"expected one of {', '.join(map(str, choices))}, got {v!r}"

    return check


def in_range(lo: float, hi: float) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        return None if lo <= v <= hi else f"expected a value in {lo}..{hi}, got {v!r}"

    return check


def _url(v: Any) -> str | None:
    ok = isinstance(v, str) and v.split("://", 1)[0] in {"http", "https", "ws", "wss"} and "://" in v
    return None if ok else f"expected an http(s):// or ws(s):// URL, got {v!r}"


def _symbols(v: Any) -> str | None:
    if not all(isinstance(s, str) and s.isalnum() and s.upper() == s for s in v):
        return "expected upper-case symbols such as BTCUSDT"
    if len(set(v)) != len(v):
        return "a symbol is listed twice"
    return None


MODES = ("paper", "testnet", "demo", "live")

# Nested mapping of section -> key -> Field or sub-mapping.
SCHEMA: dict[str, Any] = {
    "settings": {
        "mode": Field(str, "paper", "paper (default: nothing is sent to an exchange), testnet, demo or live", one_of(*MODES)),
        "data_dir": Field(str, None, "embedded databases, keys and state (default: the user's data directory)", nullable=True),
        "database_url": Field(str, None, "PostgreSQL URL; unset = embedded PostgreSQL under data_dir", nullable=True),
        "redis_url": Field(str, None, "Redis URL; unset = embedded Redis under data_dir", nullable=True),
        "status_interval_s": Field((int, float), 5.0, "seconds between status lines on the terminal", in_range(0.5, 3600)),
        "api": {
            "host": Field(str, "127.0.0.1", "address the REST/WebSocket API listens on"),
            "port": Field(int, 8000, "API port (0 = any free port)", in_range(0, 65535)),
            "cors_origins": Field(list, [], "origins allowed by CORS"),
            "rate_limit_per_minute": Field(int, 1200, "API requests per minute per client", in_range(1, 1_000_000)),
            "token_ttl_minutes": Field(int, 60, "lifetime of an access token", in_range(1, 7 * 24 * 60)),
        },
        "exchange": {
            "rest_url": Field(str, None, "Bybit REST base URL; unset = per mode (embedded local exchange for paper)", _url, nullable=True),
            "ws_public_url": Field(str, None, "public linear stream URL; unset = per mode", _url, nullable=True),
            "ws_private_url": Field(str, None, "private stream URL; unset = per mode", _url, nullable=True),
            "api_key": Field(str, "", "API key (use ${BYBIT_API_KEY})"),
            "api_secret": Field(str, "", "API secret (use ${BYBIT_API_SECRET})"),
            "recv_window_ms": Field(int, 5000, "recv_window of signed requests", in_range(100, 60_000)),
            "orders_per_second": Field(int, 10, "order endpoint rate limit per UID", in_range(1, 1200)),
            "requests_per_second": Field(int, 50, "query endpoint rate limit per UID", in_range(1, 1200)),
        },
        "sim": {
            "symbols": Field(int, 12, "symbols served by the embedded local exchange", in_range(1, 500)),
            "seed": Field(int, 1, "seed of the local exchange's market model"),
            "balance": Field(str, "100000", "USDT in the local exchange's wallet"),
            "phases": Field(int, 5, "slices of the local exchange's 10 ms clock the symbols are spread "
                            "over (1: all symbols pushed in the same millisecond)", in_range(1, 10)),
        },
        "feed": {
            "depth": Field(int, 50, "order-book depth subscribed", one_of(1, 50, 200, 1000)),
            "pairs_per_connection": Field(int, 10, "symbols per public WebSocket", in_range(1, 50)),
        },
        "logging": {
            "level": Field(str, "INFO", "log level", one_of("DEBUG", "INFO", "WARNING", "ERROR")),
            "format": Field(str, "console", "console (people) or json (machines)", one_of("console", "json")),
        },
    },
    "symbols": Field(list, [], "symbols to trade; empty = the first settings.sim.symbols of the exchange", _symbols),
    "strategies": Field(dict, {}, "strategy name -> {enabled, params}; validated by the strategy"),
    "risk_limits": Field(dict, {}, "risk limit -> value; validated by the risk manager"),
}


def _convert(key: str, f: Field, value: Any) -> Any:
    """Values from the environment arrive as strings; YAML gives typed values."""
    if value is None:
        if f.nullable:
            return None
        raise ConfigError(key, "must not be empty")
    kinds = f.kind if isinstance(f.kind, tuple) else (f.kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise ConfigError(key, f"expected {kinds[0].__name__}, got a boolean")
    if isinstance(value, kinds):
        return value
    if isinstance(value, str):
        text = value.strip()
        for k in kinds:
            try:
                if k is int:
                    return int(text)
                if k is float:
                    return float(text)
                if k is bool:
                    if text.lower() in {"1", "true", "yes", "on"}:
                        return True
                    if text.lower() in {"0", "false", "no", "off"}:
                        return False
                if k is list:
                    return [s.strip() for s in text.split(",") if s.strip()]
            except ValueError:
                continue
    if isinstance(value, int) and float in kinds:
        return float(value)
    names = " or ".join(k.__name__ for k in kinds)
    raise ConfigError(key, f"expected {names}, got {value!r}")


def validate(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults filled in, types converted, every key checked; raises ConfigError naming the key."""

    def walk(spec: Mapping[str, Any], data: Any, prefix: str) -> dict[str, Any]:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(prefix.rstrip("."), f"expected a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - set(spec))
        if unknown:
            raise ConfigError(f"{prefix}{unknown[0]}", f"unknown key (known: {', '.join(sorted(spec))})")
        out: dict[str, Any] = {}
        for name, sub in spec.items():
            key = f"{prefix}{name}"
            if isinstance(sub, Field):
                value = _convert(key, sub, data[name]) if name in data else sub.default
                if value is not None and sub.check is not None:
                    problem = sub.check(value)
                    if problem:
                        raise ConfigError(key, problem)
                out[name] = value
            else:
                out[name] = walk(sub, data.get(name), key + ".")
        return out

    return walk(SCHEMA, raw, "")


def example_yaml() -> str:
    """A commented YAML file with every key at its default (``config.example.yaml``)."""
    lines = ["# Generated from pysrc/config/schema.py: every key with its default.", ""]

    def walk(spec: Mapping[str, Any], indent: int) -> None:
        pad = "  " * indent
        for name, sub in spec.items():
            if isinstance(sub, Field):
                lines.append(f"{pad}# {sub.help}")
                lines.append(f"{pad}{name}: {_yaml_scalar(sub.default)}")
            else:
                lines.append(f"{pad}{name}:")
                walk(sub, indent + 1)

    walk(SCHEMA, 0)
    return "\n".join(lines) + "\n"


def _yaml_scalar(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, dict)):
        return "[]" if isinstance(v, list) else "{}"
    if isinstance(v, str):
        return f'"{v}"'
    return str(v)


__all__ = ["MODES", "SCHEMA", "ConfigError", "Field", "example_yaml", "validate"]
