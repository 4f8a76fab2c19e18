"""The REST and WebSocket API (FastAPI): authentication, health, metrics and the bot's routes."""
