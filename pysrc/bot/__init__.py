"""The bot's entry point package: ``python -m pysrc.bot``."""
