# dm, the dialog manager. Build from the repository root:
#   docker build -f docker/dm.Dockerfile -t voice-dm/dm .
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

RUN useradd --create-home --uid 10001 app
WORKDIR /app

# Dependencies first, exactly as uv.lock pins them (hashes checked; no dev tools): this
# layer is rebuilt only when the lock changes.
COPY requirements/runtime.txt ./requirements.txt
RUN pip install --no-deps --require-hashes -r requirements.txt

COPY services/svckit/svckit ./svckit
COPY services/dm/dm ./dm

ENV PYTHONPATH=/app \
    HOST=0.0.0.0 \
    DM_PORT=8081
USER app
EXPOSE 8081
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('DM_PORT', '8081'), timeout=2)"]
CMD ["python", "-m", "dm"]
