# Watchgate serving MCP over Streamable HTTP (docs/deployment.md).
# Build: docker build -t watchgate .      Run: docker run -p 8848:8848 -v $PWD/conf:/conf:ro watchgate
# The image installs exactly the lock file (uv.lock) and runs as an unprivileged user.
FROM python:3.11-slim AS build
WORKDIR /src
COPY tools/uv-requirements.txt tools/uv-requirements.txt
RUN python -m pip install --no-cache-dir --require-hashes --no-deps -r tools/uv-requirements.txt
COPY pyproject.toml uv.lock README.md ./
COPY watchgate watchgate
COPY actors actors
RUN UV_PROJECT_ENVIRONMENT=/opt/watchgate uv sync --frozen --no-dev --no-editable

FROM python:3.11-slim
COPY --from=build /opt/watchgate /opt/watchgate
RUN useradd --system --uid 10001 --home-dir /var/lib/watchgate --create-home watchgate
USER watchgate
ENV PATH=/opt/watchgate/bin:$PATH
EXPOSE 8848
# The config at /conf/watchgate.yaml sets proxy.transport: http and a token file; a non-loopback
# address is refused without one. /healthz is the readiness probe.
ENTRYPOINT ["watchgate", "run", "-c", "/conf/watchgate.yaml"]
