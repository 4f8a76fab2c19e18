"""Configuration loading: defaults, YAML sections, ${ENV} substitution, overrides, and errors that
name the bad key."""

from __future__ import annotations

from pathlib import Path

import pytest

from pysrc.config import ConfigError, example_yaml, load

REPO = Path(__file__).resolve().parents[2]


def test_defaults_need_no_file_and_no_environment() -> None:
    cfg = load(env={})
    assert cfg.mode == "paper"
    assert cfg["settings.api.host"] == "127.0.0.1" and cfg["settings.api.port"] == 8000
    assert cfg["settings.database_url"] is None and cfg["symbols"] == []
    cfg.check_can_start(allow_live=False)


def test_yaml_file_env_substitution_and_precedence(tmp_path: Path) -> None:
    f = tmp_path / "bot.yaml"
    f.write_text(
        "settings:\n"
        "  mode: testnet\n"
        "  api: {port: 9001}\n"
        "  exchange:\n"
        "    api_key: ${KEY}\n"
        "    api_secret: ${SECRET:-fallback}\n"
        "symbols: [BTCUSDT, ETHUSDT]\n"
        "risk_limits: {max_daily_loss: 0.05}\n"
    )
    cfg = load(f, env={"KEY": "k1"})
    assert cfg["settings.exchange.api_key"] == "k1" and cfg["settings.exchange.api_secret"] == "fallback"
    assert cfg["settings.api.port"] == 9001 and cfg["symbols"] == ["BTCUSDT", "ETHUSDT"]
    assert cfg["risk_limits"] == {"max_daily_loss": 0.05}
    cfg.check_can_start(allow_live=False)
    # environment beats the file, overrides beat both; strings from the environment are converted
    cfg = load(f, env={"KEY": "k1", "BOT_API_PORT": "9002", "BOT_SYMBOLS": "SOLUSDT, XRPUSDT"})
    assert cfg["settings.api.port"] == 9002 and cfg["symbols"] == ["SOLUSDT", "XRPUSDT"]
    cfg = load(f, env={"KEY": "k1", "BOT_API_PORT": "9002"}, overrides={"settings.api.port": 9003})
    assert cfg["settings.api.port"] == 9003


def test_a_directory_of_section_files(tmp_path: Path) -> None:
    (tmp_path / "settings.yaml").write_text("settings:\n  sim: {symbols: 20}\n")
    (tmp_path / "symbols.yaml").write_text("- BTCUSDT\n")
    (tmp_path / "strategies.yaml").write_text("orderbook_scalper: {enabled: true}\n")
    cfg = load(tmp_path, env={})
    assert cfg["settings.sim.symbols"] == 20 and cfg["symbols"] == ["BTCUSDT"]
    assert cfg["strategies"] == {"orderbook_scalper": {"enabled": True}}


@pytest.mark.parametrize(
    ("text", "env", "key", "words"),
    [
        ("settings: {api: {port: abc}}", {}, "settings.api.port", "expected int"),
        ("settings: {api: {port: 70000}}", {}, "settings.api.port", "0..65535"),
        ("settings: {api: {prot: 1}}", {}, "settings.api.prot", "unknown key"),
        ("settings: {mode: yolo}", {}, "settings.mode", "one of paper"),
        ("settings: {exchange: {rest_url: ftp://x}}", {}, "settings.exchange.rest_url", "URL"),
        ("settings: {exchange: {api_key: '${NOPE}'}}", {}, "settings.exchange.api_key", "NOPE is not set"),
        ("symbols: [btcusdt]", {}, "symbols", "upper-case"),
        ("symbols: [BTCUSDT, BTCUSDT]", {}, "symbols", "twice"),
        ("settings: [1, 2]", {}, "settings", "mapping"),
        ("settings: {feed: {depth: 7}}", {}, "settings.feed.depth", "one of 1, 50"),
        ("settings: {api: {port: true}}", {}, "settings.api.port", "boolean"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, env: dict[str, str], key: str, words: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(text + "\n")
    with pytest.raises(ConfigError) as info:
        load(f, env=env)
    assert info.value.key == key and words in str(info.value), str(info.value)


def test_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "missing.yaml", env={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("settings: {api: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load(bad, env={})


def test_modes_that_cannot_start() -> None:
    with pytest.raises(ConfigError, match="--live"):
        load(env={"BOT_MODE": "live", "BYBIT_API_KEY": "k", "BYBIT_API_SECRET": "s"}).check_can_start(allow_live=False)
    load(env={"BOT_MODE": "live", "BYBIT_API_KEY": "k", "BYBIT_API_SECRET": "s"}).check_can_start(allow_live=True)
    with pytest.raises(ConfigError, match="API keys") as info:
        load(env={"BOT_MODE": "demo"}).check_can_start(allow_live=False)
    assert info.value.key == "settings.exchange.api_key"


def test_the_example_file_is_current_and_loads() -> None:
    example = REPO / "config.example.yaml"
    if not example.is_file():
        pytest.skip("runs from a source checkout")
    assert example.read_text() == example_yaml(), "regenerate: python -P -m pysrc.config > config.example.yaml"
    assert load(example, env={})["settings.mode"] == "paper"
