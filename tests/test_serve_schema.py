"schemathesis against the running server's /openapi.json with a read key, then the admin routes with an admin key: no 5xx for any input, every response as the schema says"
import shutil, signal, subprocess, sys, time, uuid
import pytest, redis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
import schemathesis
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_headers_conformance, response_schema_conformance,
                                                status_code_conformance)
from conftest import REDIS_URL
from test_serve import Server, home_env, serve_home

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance, response_schema_conformance]
EXAMPLES = {GenerationMode.POSITIVE: 25, GenerationMode.NEGATIVE: 10}   # per operation: the file stays well under 90 s
ADMIN_EXAMPLES = {GenerationMode.POSITIVE: 12, GenerationMode.NEGATIVE: 6}   # per admin operation, with an admin key (each writes MLflow)
ADMIN_OPS = {"POST /v1/admin/rollback", "POST /v1/admin/split"}
# generated symbols are almost never stored ones: these passes pin a stored symbol so the 200 answers are checked too
PINNED = {"/v1/predictions/{symbol}": (15, dict(path_parameters={"symbol": "SYN000"})),
          "/v1/predict": (3, dict(body={"symbol": "SYN001", "horizon": 5}))}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("serve-schema") / "home"
    shutil.copytree(serve_home(tmp_path_factory), home)   # the served home test_serve builds, once per run
    prefix = f"swbt-{uuid.uuid4().hex[:10]}"
    env = home_env(home, prefix)
    from stock_workbench.access import KeyStore
    from stock_workbench.config import Settings
    ks = KeyStore(Settings(home, env=env))
    _, key = ks.create("read", note="schemathesis")
    _, admin = ks.create("admin", note="schemathesis admin")
    srv = Server(env, "--no-access-log")
    srv.key, srv.admin = key, admin
    yield srv
    if srv.p.poll() is None: srv.stop(signal.SIGKILL)
    rc = redis.Redis.from_url(REDIS_URL)
    for k in rc.scan_iter(f"{prefix}:*", count=1000): rc.delete(k)


def test_no_server_error_and_responses_match_the_schema(server):
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    ops = [r.ok() for r in schema.get_all_operations()]
    assert {f"{o.method.upper()} {o.path}" for o in ops} >= {"GET /v1/predictions/{symbol}", "GET /v1/predictions", "POST /v1/predict",
                                                              "GET /v1/models", "POST /v1/admin/rollback", "POST /v1/admin/split",
                                                              "GET /healthz", "GET /readyz", "GET /metrics"}
    seen, admin_seen = {}, {}
    # the pinned passes first: generated batches spend the key's on-demand token bucket (429 after it)
    runs = [(GenerationMode.POSITIVE, n, op, kw, server.key, seen) for op in ops for path, (n, kw) in PINNED.items() if op.path == path]
    runs += [(mode, n, op, {}, server.key, seen) for mode, n in EXAMPLES.items() for op in ops]
    runs += [(mode, n, op, {}, server.admin, admin_seen) for mode, n in ADMIN_EXAMPLES.items() for op in ops
             if f"{op.method.upper()} {op.path}" in ADMIN_OPS]
    for mode, n, op, kw, key, seen_by in runs:
        @given(case=op.as_strategy(generation_mode=mode, headers={"X-API-Key": key}, **kw))
        @settings(max_examples=n, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
        def run(case):
            r = case.call_and_validate(base_url=server.url, checks=CHECKS if mode == GenerationMode.POSITIVE else [not_a_server_error])
            seen_by.setdefault(op.path, set()).add(r.status_code)
        try: run()
        except Unsatisfiable:   # no parameters to make invalid (GET /healthz)
            assert mode == GenerationMode.NEGATIVE
    assert 200 in seen["/v1/predictions/{symbol}"] and 200 in seen["/v1/predict"], seen   # valid requests were answered, not only refused
    assert seen["/v1/admin/rollback"] <= {403, 422}, seen   # a read key never changes anything
    # the admin key reaches the operations: a split is set, a rollback runs once, then there is no previous champion (409)
    assert 200 in admin_seen["/v1/admin/split"] and admin_seen["/v1/admin/rollback"] & {200, 409}, admin_seen
    assert not {403} & (admin_seen["/v1/admin/split"] | admin_seen["/v1/admin/rollback"]), admin_seen
    assert server.stop(signal.SIGTERM) == 0
    assert server.key not in server.text and server.admin not in server.text and "internal error" not in server.text, server.text[-2000:]
