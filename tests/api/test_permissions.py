"""One table names what every RPC needs: no method Switchyard answers is missing from
it, and nothing in it names a method that does not exist."""

from __future__ import annotations

from google.protobuf import descriptor_pool

from switchyard import app
from switchyard.api.permissions import RULES
from switchyard.api.reflection import SERVICE_NAME as REFLECTION
from switchyard.domain.access import Permission
from switchyard.gen.v1 import change_pb2, config_pb2, flag_pb2, rate_limit_pb2  # noqa: F401

OPEN_SERVICES = {"grpc.health.v1.Health", REFLECTION}


def _served_methods() -> set[str]:
    pool = descriptor_pool.Default()
    methods = set()
    for name in app.LISTED:
        if name in OPEN_SERVICES:
            continue
        service = pool.FindServiceByName(name)
        methods |= {f"/{service.full_name}/{method.name}" for method in service.methods}
    return methods


def test_every_method_of_every_served_service_has_a_rule() -> None:
    served = _served_methods()
    assert len(served) > 50, "the walk found the services"
    missing = sorted(served - RULES.keys())
    assert not missing, f"methods with no permission rule: {missing}"


def test_the_table_names_no_method_that_is_not_served() -> None:
    extra = sorted(RULES.keys() - _served_methods())
    assert not extra, f"rules for methods nobody serves: {extra}"


def test_writes_need_write_and_rollbacks_need_rollback() -> None:
    for method, rule in RULES.items():
        name = method.rsplit("/", 1)[-1]
        if name.startswith(("Rollback",)):
            assert rule.permission is Permission.ROLLBACK, method
        if rule.write:
            assert rule.permission is Permission.WRITE, method
            if name == "ApplyWrites":  # a batch: each write's own rule, in the handler
                continue
            assert rule.targets is not None, f"{method}: a write must say what it touches"
