"""`mcpp.load_policy` and `mcpp.Policy`, used as a library user would."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

import mcpp
from tests.gateway.peers import redis_url  # noqa: F401  (a real redis-server; fails in CI when missing)

ROOT = Path(__file__).resolve().parents[2]
# a time to come: stores shared between processes expire a window by the clock, so limits
# are exercised at a `now` whose windows are not over yet
NOON = datetime(2030, 6, 1, 12, 0, tzinfo=timezone.utc)

K8S = '''\
@id("reads") permit (principal, action == Action::"get_pod", resource);
@id("ns") @reason("Namespace is outside the allowed set.")
permit (principal, action == Action::"delete_pod", resource)
when { context.input.namespace in ["dev", "staging"] };
@id("ops-only")
forbid (principal, action == Action::"delete_pod", resource)
unless { principal in Group::"ops" };
@id("pod-deletes") @reason("Too many deletions.")
limit "deletes" (principal, action == Action::"delete_pod", resource) max 2 per hour scope grant;
hide Action::"get_secret";
'''
OPS = mcpp.Grant("u1", "alice", frozenset({"ops"}))


@pytest.fixture
def k8s() -> mcpp.Policy:
    return mcpp.load_policy(K8S, filename="k8s.mcpp")


@pytest.mark.parametrize(
    "tool, args, principal, expected",
    [
        ("get_pod", {}, None, ("allow", "/tools/get_pod", "reads")),
        ("delete_pod", {"namespace": "dev"}, OPS, ("allow", "/tools/delete_pod", "ns")),
        ("delete_pod", {"namespace": "prod"}, OPS, ("deny", "/tools/delete_pod/require/args.namespace-in", "ns")),
        ("delete_pod", {"namespace": "dev"}, "u2", ("deny", "/policies/ops-only", "ops-only")),
        ("get_secret", {}, OPS, ("deny", "/hide", None)),
        ("rm_rf", {}, OPS, ("deny", "/default", None)),
        ("delete_pod", "not an object", OPS, ("deny", "/request", None)),
    ],
)
def test_decide_table(k8s, tool, args, principal, expected):
    d = k8s.decide(tool, args, principal=principal, now=NOON, dry_run=True)
    assert (d.decision, d.rule, d.policy) == expected
    assert d.allowed is (expected[0] == "allow") and d.tool == tool


def test_a_decision_names_its_statement_in_the_source(k8s):
    d = k8s.decide("delete_pod", {"namespace": "prod"}, principal=OPS)
    assert d.message == "Namespace is outside the allowed set."
    assert (d.span.file, d.span.line, d.span.col) == ("k8s.mcpp", 4, 1)  # the failing `when` clause
    assert str(d.span) == "k8s.mcpp:4:1"
    assert d.to_dict() == {"decision": "deny", "rule": "/tools/delete_pod/require/args.namespace-in",
                           "message": d.message, "policy": "ns", "tool": "delete_pod", "span": "k8s.mcpp:4:1"}


def test_json_form_decides_the_same_without_spans():
    src = mcpp.load_policy(ROOT / "examples" / "refunds.mcpp")
    compiled = mcpp.load_policy(ROOT / "examples" / "refunds.json")
    assert compiled.origin == "json" and src.origin == "mcpp"
    for amount in (10, 999, 1500):
        a = src.decide("refund_payment", {"amount": amount}, dry_run=True)
        b = compiled.decide("refund_payment", {"amount": amount}, dry_run=True)
        assert a.allowed == b.allowed
        assert b.span is None and "span" not in b.to_dict()


def test_limits_count_in_the_policy_store_and_release_gives_back(k8s):
    first = k8s.decide("delete_pod", {"namespace": "dev"}, principal=OPS, now=NOON)
    second = k8s.decide("delete_pod", {"namespace": "dev"}, principal=OPS, now=NOON)
    third = k8s.decide("delete_pod", {"namespace": "dev"}, principal=OPS, now=NOON)
    assert (first.allowed, second.allowed, third.allowed) == (True, True, False)
    assert third.rule == "/tools/delete_pod/limits/deletes" and third.policy == "pod-deletes"
    assert third.limit == mcpp.LimitHit("deletes", 2, "hour", "grant", "2030-06-01T13:00:00Z")
    assert third.to_dict()["limit"]["resets_at"] == "2030-06-01T13:00:00Z"
    second.release()
    second.release()  # idempotent
    assert k8s.decide("delete_pod", {"namespace": "dev"}, principal=OPS, now=NOON).allowed
    # a dry run counts nothing; another grant has its own budget
    assert not k8s.decide("delete_pod", {"namespace": "dev"}, principal=OPS, now=NOON, dry_run=True).allowed
    assert k8s.decide("delete_pod", {"namespace": "dev"}, principal=mcpp.Grant("u9", groups=frozenset({"ops"})),
                      now=NOON).allowed


@pytest.mark.parametrize("store", ["memory", "sqlite", "redis"])
def test_a_counter_store_given_at_load_or_at_decide_time(tmp_path, store, request):
    def make():
        if store == "memory":
            return mcpp.MemoryCounters()
        if store == "sqlite":
            return mcpp.SQLiteCounters(tmp_path / "state")
        import redis

        return mcpp.RedisCounters(redis.Redis.from_url(request.getfixturevalue("redis_url")))

    shared = make()
    a = mcpp.load_policy(K8S, counters=shared)
    b = mcpp.load_policy(K8S, counters=shared)  # two policies (two processes, say) on one store
    assert a.counters is shared
    grant = mcpp.Grant(f"u-{store}-{tmp_path.name}", groups=frozenset({"ops"}))  # a fresh budget on a shared server
    assert a.decide("delete_pod", {"namespace": "dev"}, principal=grant, now=NOON).allowed
    assert b.decide("delete_pod", {"namespace": "dev"}, principal=grant, now=NOON).allowed
    assert not a.decide("delete_pod", {"namespace": "dev"}, principal=grant, now=NOON).allowed
    # a store given to one call is used for that call only
    other = mcpp.MemoryCounters()
    assert a.decide("delete_pod", {"namespace": "dev"}, principal=grant, now=NOON, counters=other).allowed
    assert not a.decide("delete_pod", {"namespace": "dev"}, principal=grant, now=NOON).allowed


@pytest.mark.parametrize(
    "principal, error",
    [(5, TypeError), (mcpp.Grant("g", groups="ops"), TypeError), (mcpp.Grant(7), TypeError)],  # type: ignore[arg-type]
)
def test_a_principal_that_is_not_one_is_refused(k8s, principal, error):
    with pytest.raises(error):
        k8s.decide("get_pod", {}, principal=principal)


def test_groups_given_as_any_collection_of_names(k8s):
    d = k8s.decide("delete_pod", {"namespace": "dev"}, principal=mcpp.Grant("u3", groups={"ops"}), dry_run=True)  # type: ignore[arg-type]
    assert d.allowed


@pytest.mark.parametrize(
    "now, ok",
    [(NOON, True), (NOON.timestamp(), True), (datetime(2026, 1, 1), False), ("noon", False)],
)
def test_now_is_an_aware_datetime_or_epoch_seconds(k8s, now, ok):
    if ok:
        assert k8s.decide("get_pod", {}, now=now).allowed
    else:
        with pytest.raises((TypeError, ValueError)):
            k8s.decide("get_pod", {}, now=now)


def test_explain_gives_cedars_reasons(k8s):
    x = k8s.explain("delete_pod", {"namespace": "dev"}, principal="u2")
    assert not x.decision.allowed
    assert x.satisfied == ("ns", "ops-only") and x.determining == ("ops-only",) and x.errored == ()
    x = k8s.explain("delete_pod", {}, principal=OPS)  # reading a missing argument errors
    assert x.errored == ("ns",) and x.to_dict()["errored"] == ["ns"]


@pytest.mark.parametrize(
    "source, error, where",
    [
        ("permit (principal, action, resource) when { x };", mcpp.PolicySyntaxError, (1, 45)),
        ('permit (principal, action, resource) when { context.input.a like 5 };', mcpp.PolicyError, None),
        ('permit (principal, action == Action::"t", resource) when { context.input.a.matches("(") };',
         mcpp.PolicyValidationError, None),
        ('{"tools": 5}', mcpp.PolicyValidationError, None),
        ('{"tools": ', mcpp.PolicySyntaxError, None),
        ("missing.mcpp", mcpp.PolicyFileError, None),
        (str(ROOT / "examples"), mcpp.PolicyFileError, None),
    ],
)
def test_errors_are_policy_errors_with_spans(source, error, where):
    with pytest.raises(error) as e:
        mcpp.load_policy(source)
    err = e.value
    assert isinstance(err, mcpp.PolicyError) and err.diagnostics and str(err)
    assert all(d.severity == "error" for d in err.diagnostics)
    assert "Traceback" not in err.render() and ": error: " in err.render()
    if where is not None:
        assert (err.span.line, err.span.col) == where


def test_a_path_str_and_text_are_told_apart(tmp_path):
    f = tmp_path / "p.mcpp"
    f.write_text('permit (principal, action == Action::"t", resource);\n')
    for source in (f, str(f)):
        p = mcpp.load_policy(source)
        assert p.filename == str(f) and p.decide("t").allowed
    p = mcpp.load_policy('permit (principal, action == Action::"t", resource);')
    assert p.filename == "<input>"
    assert mcpp.load_policy("").decide("t").rule == "/default"  # empty text: an empty policy, not the path ""
    assert mcpp.load_policy(b"permit (principal, action, resource);").decide("t").allowed  # bytes: a file's content
    with pytest.raises(TypeError, match="a path, policy text or bytes"):
        mcpp.load_policy(3)  # type: ignore[arg-type]


def test_a_catalog_is_checked_and_kept(tmp_path):
    catalog = {"mcppCatalog": 1, "server": {"name": "k8s", "version": "1"}, "protocolVersion": "2025-11-25",
               "source": "test", "capturedAt": "2026-01-01T00:00:00Z", "tools": {}}
    from mcpp.catalog import Catalog

    cat = Catalog.from_tools([{"name": "get_pod", "inputSchema": {"type": "object", "properties": {}}}])
    path = tmp_path / "k8s.catalog.json"
    cat.write(path)
    p = mcpp.load_policy('permit (principal, action == Action::"get_pod", resource);', catalog=path)
    assert p.catalog is not None and set(p.catalog.tools) == {"get_pod"}
    with pytest.raises(mcpp.PolicyValidationError, match="delete_pod"):
        mcpp.load_policy('permit (principal, action == Action::"delete_pod", resource);', catalog=cat)
    with pytest.raises(mcpp.CatalogError):
        mcpp.load_policy('permit (principal, action, resource);', catalog=tmp_path / "missing.json")
    assert catalog  # the file format itself is docs/catalogs.md's


def test_verify_and_visible(k8s):
    p = mcpp.load_policy(K8S + '@id("no-secrets") assert hidden (principal, action == Action::"get_secret", resource);\n'
                         '@id("prod-deletes") assert deny (principal, action == Action::"delete_pod", resource)'
                         ' when { context.input.namespace == "prod" };\n'
                         '@id("wrong") assert allow (principal, action == Action::"delete_pod", resource);\n',
                         filename="k8s.mcpp")
    results = {r.id: r for r in p.verify()}
    assert results["no-secrets"].passed and results["prod-deletes"].status == "pass"
    wrong = results["wrong"]
    assert wrong.status == "fail" and wrong.counterexample["request"]["params"]["name"] == "delete_pod"
    assert wrong.span.file == "k8s.mcpp" and wrong.to_dict()["status"] == "fail"
    assert k8s.visible(["get_pod", "delete_pod", "get_secret", "rm_rf"], principal=OPS) == {"get_pod", "delete_pod"}
    # without the ops group no delete can be allowed: the gateway would not list it
    assert k8s.visible(["get_pod", "delete_pod"], principal="u2") == {"get_pod"}


def test_a_malformed_assertion_is_a_validation_error():
    p = mcpp.load_policy('assert hidden (principal, action == Action::"t", resource) when { context.input.a == 1 };')
    with pytest.raises(mcpp.PolicyValidationError):
        p.verify()


def test_diff_names_looser_and_stricter_tools():
    old = 'permit (principal, action == Action::"a", resource) when { context.input.n <= 10 };'
    new = 'permit (principal, action == Action::"a", resource) when { context.input.n <= 20 };'
    changes = {t.tool: t for t in mcpp.diff(old, mcpp.load_policy(new))}
    a = changes["a"]
    assert a.status == "looser" and a.looser.status == "yes" and a.stricter.status == "no"
    n = a.looser.call["request"]["params"]["arguments"]["n"]
    assert 10 < n <= 20 and a.looser.old["decision"] == "deny" and a.looser.new["decision"] == "allow"
    assert json.loads(json.dumps(a.to_dict()))["status"] == "looser"
    assert all(t.status == "equivalent" for t in changes.values() if t.tool != "a")


def test_a_policy_loads_from_a_deep_stack_as_from_an_empty_one():
    """Loading recurses (the parser's tree, validation): a policy at the nesting bound that
    loads from an empty stack raised RecursionError from ~400 frames below the limit. It is
    loaded again from an empty stack (lang/stack.py)."""
    import sys

    text = ("permit (principal, action, resource) when { " + "[" * 197 + "1" + "]" * 197
            + " == context.input.a };\n")

    def at_depth(n: int):
        return at_depth(n - 1) if n > 0 else mcpp.load_policy(text)

    here = len(__import__("inspect").stack(0))
    policy = at_depth(sys.getrecursionlimit() - here - 60)
    assert policy.decide("t", {"a": 1}, dry_run=True).decision == "deny"  # ([[…1…]] is no number)


@pytest.mark.parametrize("form", ["json", "catalog"])
def test_json_readers_retry_from_an_empty_stack_rather_than_blame_the_input(form, tmp_path):
    """hostile review 29, F2: the JSON form's and a catalog's readers turned json's
    RecursionError into "nested too deeply to read" — from a deep caller stack, a valid
    shipped policy or catalog was refused, and the retry in `load_policy` never saw it. Only
    input that is too deep from an empty stack too is blamed (`TooDeepAnywhere`)."""
    import inspect
    import sys

    examples = Path(__file__).resolve().parents[2] / "examples"
    catalog = tmp_path / "c.json"
    nested: dict = {"type": "string"}
    for _ in range(20):
        nested = {"type": "object", "properties": {"a": nested}}
    catalog.write_text(json.dumps({"tools": [{"name": "t", "inputSchema": nested}]}))

    def load():
        if form == "json":
            return mcpp.load_policy(examples / "http.json")
        return mcpp.load_policy("permit (principal, action, resource);\n", catalog=catalog)

    def at_depth(n: int):
        return at_depth(n - 1) if n > 0 else load()

    here = len(inspect.stack(0))
    for spare in (400, 120, 60, 40, 30, 25, 20):
        assert isinstance(at_depth(sys.getrecursionlimit() - here - spare), mcpp.Policy), spare


@pytest.mark.parametrize("policy", ["permit (principal, action, resource);\n",
                                    'permit (principal, action == Action::"t", resource) when { context.input.a.a.a == "x" };\n'])
def test_a_hand_built_catalog_nested_past_every_bound_is_an_error_never_a_recursion_error(policy):
    """hostile review 29, F9: `Catalog(...)` built in Python skips `Catalog.from_tools`'s
    depth bound, and a 3,000-level schema raised RecursionError out of `load_policy`."""
    from mcpp.catalog import Catalog
    from mcpp.catalog.model import ToolInfo

    schema: dict = {"type": "string"}
    for _ in range(3000):
        schema = {"type": "object", "properties": {"a": schema}}
    cat = Catalog(tools={"t": ToolInfo(name="t", title=None, description="", input_schema=schema, annotations={},
                                       hash="x")})
    try:
        mcpp.load_policy(policy, catalog=cat)
    except mcpp.PolicyError as e:
        assert "RecursionError" not in str(e)


def test_a_claim_nested_deeply_is_a_caller_that_does_not_fit_not_an_evaluation_error():
    """hostile review 29, F10: the message quoting a claim of the wrong type took its
    `repr`, which raised RecursionError on a 5,000-deep list: denied with `/error`."""
    policy = mcpp.load_policy('entity User { x: String };\n'
                              'permit (principal is User, action, resource) when { principal.x == "a" };\n')
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    d = policy.decide("t", {}, principal=mcpp.User("u", {"x": deep}), dry_run=True)
    assert (d.decision, d.rule) == ("deny", "/principal") and len(d.message) < 300, d.message
