"""Configuration: YAML sections with ``${ENV}`` substitution, environment overrides and one
validated schema (:mod:`pysrc.config.schema`) whose errors name the bad key."""

from pysrc.config.loader import ENV_VARS, SECTIONS, Config, load
from pysrc.config.schema import MODES, ConfigError, example_yaml, validate

__all__ = ["ENV_VARS", "MODES", "SECTIONS", "Config", "ConfigError", "example_yaml", "load", "validate"]
