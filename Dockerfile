# syntax=docker/dockerfile:1
# Multi-stage: build the one wheel (Rust core + Cython kernels) with a Rust toolchain, then install
# it into a slim runtime that has no compiler, no source tree and no root user.

FROM python:3.11-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential curl ca-certificates \
 && rm -rf /var/lib/apt/lists/*
ARG RUST_VERSION=1.95.0
RUN curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
  | sh -s -- -y --profile minimal --default-toolchain "${RUST_VERSION}"
ENV PATH=/root/.cargo/bin:${PATH}
WORKDIR /src
COPY . .
# Release build, exact Cargo.lock versions (setup.py passes --locked).
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim-bookworm AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN useradd --create-home --uid 10001 bot
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER bot
# The working directory holds no pysrc/ folder, so the installed package is what runs.
WORKDIR /home/bot
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD python -c "from pysrc import _native; _native.BookEngine('bybit')" || exit 1
ENTRYPOINT ["python", "-m", "pysrc.bot"]
