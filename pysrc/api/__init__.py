"""The REST and WebSocket API (FastAPI): authentication, health, metrics and the bot's routes.

``pysrc.api.app.create_app(backend, auth, ...)`` builds the application over a
:class:`pysrc.api.backend.Backend` (the seam the bot's runtime implements). Nothing is imported
here, so ``pysrc.api.auth`` and ``pysrc.api.backend`` load without FastAPI's start-up cost.
Reference: ``docs/api.md``.
"""
