# syntax=docker/dockerfile:1
# llm-local, the OpenAI-compatible LLM service (embedded llama.cpp, or a proxy to
# vLLM / Ollama / llama.cpp server). Build from the repository root:
#   docker build -f docker/llm-local.Dockerfile -t voice-dm/llm-local .
# It refuses to listen beyond loopback without LLM_API_KEY.

# llama-cpp-python is compiled here (minutes); the runtime image gets only its wheel.
FROM python:3.11.14-slim-bookworm AS llama-build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
# A portable x86-64 build (any CPU since 2013) rather than one tuned to the build host.
# For an NVIDIA GPU build, start from a CUDA image and pass --build-arg LLAMA_CMAKE_ARGS=-DGGML_CUDA=on.
ARG LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
# The sdist uv.lock pins (hash checked), its build backend pinned through PIP_CONSTRAINT.
COPY requirements/llama.txt requirements/llama-build.txt /build/
RUN --mount=type=cache,target=/root/.cache/pip \
    CMAKE_ARGS="${LLAMA_CMAKE_ARGS}" PIP_CONSTRAINT=/build/llama-build.txt \
    pip wheel --no-deps --require-hashes --no-binary llama-cpp-python \
        --wheel-dir /wheels -r /build/llama.txt

FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# libgomp1: llama.cpp's OpenMP threads.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 app
WORKDIR /app

RUN --mount=type=bind,from=llama-build,source=/wheels,target=/wheels \
    pip install --no-deps /wheels/*.whl

# Dependencies next, exactly as uv.lock pins them (hashes checked; no dev tools);
# llama-cpp-python is the wheel above.
COPY requirements/llm-local.txt ./requirements.txt
RUN pip install --no-deps --require-hashes -r requirements.txt

COPY services/svckit/svckit ./svckit
COPY services/llm-local/llm_local ./llm_local

ENV PYTHONPATH=/app \
    HOST=0.0.0.0 \
    LLM_PORT=8000
USER app
EXPOSE 8000
# /health answers 503 while the model loads; the start period covers a big GGUF.
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('LLM_PORT', '8000'), timeout=2)"]
CMD ["python", "-m", "llm_local"]
