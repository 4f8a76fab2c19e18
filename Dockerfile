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
# The working directory holds no pysrc/ folder, so the installed package is what runs. The API
# listens on every interface inside the container (publish it with -p 8000:8000); state lives in
# /home/bot/data (mount a volume there to keep it).
WORKDIR /home/bot
ENV BOT_API_HOST=0.0.0.0 BOT_DATA_DIR=/home/bot/data
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4).status != 200)" || exit 1
ENTRYPOINT ["python", "-m", "pysrc.bot"]
