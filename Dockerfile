# Switchyard: `docker build -t switchyard .` (or `make docker`).
#
# Two stages on the same pinned base: the builder installs the project and its runtime
# dependencies, at the exact versions in constraints.txt, into a virtualenv at /opt/venv;
# the runtime stage gets only that virtualenv and runs as a non-root user.

FROM python:3.11-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m venv /opt/venv

WORKDIR /src
# README.md is the package's readme (pyproject.toml), so the build needs it.
COPY pyproject.toml README.md constraints.txt ./
COPY src/ src/
# The constraints pin every package; only the runtime dependencies get installed.
RUN /opt/venv/bin/pip install --no-cache-dir --constraint constraints.txt .
# xds-protos ships stale copies of opentelemetry-proto's modules at the same paths
# (grpc/grpc#42926): the real ones go back last, or the OTLP exporter cannot import.
RUN /opt/venv/bin/pip install --no-cache-dir --constraint constraints.txt \
    --force-reinstall --no-deps opentelemetry-proto


FROM python:3.11-slim-bookworm

# The same base image as the builder, so the venv's interpreter link and script shebangs
# (/opt/venv/bin/python -> /usr/local/bin/python3.11) resolve unchanged.
RUN groupadd --system --gid 10001 switchyard \
    && useradd --system --uid 10001 --gid switchyard --no-create-home \
        --home-dir /var/lib/switchyard --shell /usr/sbin/nologin switchyard \
    && install --directory --owner=switchyard --group=switchyard --mode=0750 /var/lib/switchyard

COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SWITCHYARD_LISTEN=0.0.0.0:50051 \
    SWITCHYARD_CONSOLE_LISTEN=off \
    SWITCHYARD_AUTH=1 \
    SWITCHYARD_DATABASE_URL=sqlite:////var/lib/switchyard/switchyard.db \
    SWITCHYARD_LOG_FORMAT=json

# A container listens beyond loopback, so callers authenticate: make the first token with
# `docker run --rm -v DATA:/var/lib/switchyard IMAGE token create --owner NAME --grant site_admin`.
WORKDIR /var/lib/switchyard
# The switchyard user, by number: Kubernetes' runAsNonRoot can only verify a numeric user.
USER 10001:10001

# gRPC, and the web console when it is turned on. It is off in the image: signing in sends
# a token, and `serve` refuses to take one over plain HTTP beyond loopback. To serve it,
# give the server a certificate (SWITCHYARD_TLS_CERT and SWITCHYARD_TLS_KEY: the console
# then serves HTTPS) and set SWITCHYARD_CONSOLE_LISTEN=0.0.0.0:8080; behind a proxy that
# terminates TLS, set SWITCHYARD_CONSOLE_INSECURE_HTTP=1 instead of the certificate. Give
# every replica behind one console address the same SWITCHYARD_CONSOLE_SESSION_KEY
# (`openssl rand -base64 32`).
EXPOSE 50051 8080
# The embedded SQLite database (and its WAL files) live here.
VOLUME /var/lib/switchyard

# Asks the gRPC health service at SWITCHYARD_LISTEN (0.0.0.0 is probed on 127.0.0.1): set the
# listen address through that variable, not `serve --listen`, so that the check follows it.
# The probe gives up after 3 s, before Docker's 5 s timeout, so its own message is logged.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["switchyard", "health", "--timeout", "3"]

ENTRYPOINT ["switchyard"]
CMD ["serve"]
