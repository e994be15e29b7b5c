"""routes.yaml parsing: the example file, defaults, and one table of invalid documents with
the exact message each must produce (file:line:column: field path: what was expected)."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from gateway.config import ConfigError, load_file, parse, path_matches

ROOT = Path(__file__).resolve().parents[2]

BASE = """\
version: 1
backends:
  legacy: {url: "http://127.0.0.1:9001"}
  users-v2: {url: "http://127.0.0.1:9002"}
routes:
  - name: users
    match: {prefix: /api/users, methods: [GET, POST, PUT]}
    split: {users-v2: 20, legacy: 80}
    capture:
      - {method: POST, path: /api/users, event: UserRegistered, aggregate: user, id: "response:/id"}
  - name: default
    split: {legacy: 100}
"""


def test_example_routes_yaml_is_valid() -> None:
    config = load_file(ROOT / "routes.yaml")
    assert [r.name for r in config.routes] == ["orders-reads", "orders-writes", "default"]
    reads = config.routes[0]
    assert reads.split == (("orders-v2", 20), ("legacy", 80))
    assert reads.timeout == 10.0
    assert reads.retries.on == frozenset({"connect-failure", "reset", "503"})
    assert config.backends["orders-v2"].outlier is not None
    assert config.backends["orders-v2"].outlier.max_ejection == 300.0


def test_defaults_are_filled() -> None:
    config = parse(BASE)
    assert config.listen == ("127.0.0.1", 8080)
    assert config.admin_listen == ("127.0.0.1", 9901)
    assert config.proxy.route_header == "x-strangler-route"
    assert config.backends["legacy"].connect_timeout == 1.0
    assert config.backends["legacy"].request_timeout == 30.0
    assert config.routes[1].match.kind == "prefix" and config.routes[1].match.path == "/"
    assert config.routes[0].capture[0].backends == frozenset({"legacy"})
    assert config.outbox["url"] == "sqlite:///./strangler-outbox.db"


@pytest.mark.parametrize(
    ("text", "duration"), [("250ms", 0.25), ("10s", 10.0), ("1m", 60.0), ("1.5s", 1.5)]
)
def test_durations(text: str, duration: float) -> None:
    config = parse(
        BASE.replace("    split: {legacy: 100}", f"    split: {{legacy: 100}}\n    timeout: {text}")
    )
    assert config.routes[1].timeout == duration


def replace(old: str, new: str) -> str:
    assert old in BASE, old
    return BASE.replace(old, new, 1)


INVALID: list[tuple[str, str, str]] = [
    (
        "yaml-syntax",
        replace("split: {legacy: 100}", "split: {legacy: 100"),
        "routes.yaml:13:1: YAML syntax error: while parsing a flow mapping: "
        "expected ',' or '}', but got '<stream end>'",
    ),
    (
        "duplicate-key",
        replace("  users-v2:", '  legacy: {url: "http://x:1"}\n  users-v2:'),
        "routes.yaml:4:3: backends.legacy: duplicate key 'legacy' (first defined on line 3)",
    ),
    (
        "unknown-key-typo",
        replace("    split: {legacy: 100}", "    split: {legacy: 100}\n    tiemout: 10s"),
        "routes.yaml:13:5: routes[1].tiemout: unknown key 'tiemout' (did you mean 'timeout'?)",
    ),
    (
        "unknown-top-level-key",
        BASE + "listne: 127.0.0.1:1\n",
        "routes.yaml:13:1: listne: unknown key 'listne' (did you mean 'listen'?)",
    ),
    (
        "wrong-type-weight",
        replace("legacy: 80}", "legacy: eighty}"),
        'routes.yaml:8:35: routes[0].split.legacy: expected a weight, got a string ("eighty")',
    ),
    (
        "wrong-type-routes",
        BASE.split("routes:")[0] + "routes: 5\n",
        "routes.yaml:5:9: routes: expected a list, got an integer (5)",
    ),
    (
        "missing-url",
        replace('users-v2: {url: "http://127.0.0.1:9002"}', "users-v2: {pool_size: 4}"),
        "routes.yaml:4:13: backends.users-v2: missing required key 'url'",
    ),
    (
        "bad-url",
        replace('"http://127.0.0.1:9002"', '"127.0.0.1:9002"'),
        "routes.yaml:4:19: backends.users-v2.url: expected an http:// or https:// URL such as "
        '"http://127.0.0.1:9001", got "127.0.0.1:9002"',
    ),
    (
        "unknown-backend-in-split",
        replace("{users-v2: 20, legacy: 80}", "{users-v3: 20, legacy: 80}"),
        "routes.yaml:8:13: routes[0].split.users-v3: unknown backend 'users-v3' "
        "(known: legacy, users-v2)",
    ),
    (
        "unknown-fallback",
        replace("    split: {legacy: 100}", "    split: {legacy: 100}\n    fallback: monolith"),
        "routes.yaml:13:15: routes[1].fallback: unknown backend 'monolith' "
        "(known: legacy, users-v2)",
    ),
    (
        "unknown-shadow-backend",
        replace(
            "    split: {legacy: 100}", "    split: {legacy: 100}\n    shadow: {backend: nope}"
        ),
        "routes.yaml:13:23: routes[1].shadow.backend: unknown backend 'nope' "
        "(known: legacy, users-v2)",
    ),
    (
        "negative-weight",
        replace("legacy: 80}", "legacy: -5}"),
        "routes.yaml:8:35: routes[0].split.legacy: expected a weight >= 0, got -5",
    ),
    (
        "all-zero-weights",
        replace("split: {legacy: 100}", "split: {legacy: 0, users-v2: 0}"),
        "routes.yaml:12:12: routes[1].split: all weights are zero; at least one must be above 0",
    ),
    (
        "duplicate-route-name",
        replace("- name: default", "- name: users"),
        "routes.yaml:11:11: routes[1].name: duplicate route name 'users' (also routes[0])",
    ),
    (
        "invalid-regex",
        replace("{prefix: /api/users, methods: [GET, POST, PUT]}", "{regex: '/api/(users'}"),
        'routes.yaml:7:20: routes[0].match.regex: invalid regular expression "/api/(users": '
        "missing ), unterminated subpattern at position 5",
    ),
    (
        "prefix-without-slash",
        replace("prefix: /api/users", "prefix: api/users"),
        "routes.yaml:7:21: routes[0].match.prefix: expected a path starting with /, "
        'got "api/users"',
    ),
    (
        "capture-outside-route",
        replace("path: /api/users, event", "path: /api/orders, event"),
        "routes.yaml:10:30: routes[0].capture[0].path: /api/orders is outside route 'users' "
        "(prefix /api/users)",
    ),
    (
        "capture-method-not-routed",
        replace("{method: POST, path", "{method: DELETE, path"),
        "routes.yaml:10:18: routes[0].capture[0].method: DELETE is not among route 'users' "
        "methods (GET, POST, PUT)",
    ),
    (
        "capture-id-names-no-placeholder",
        replace('id: "response:/id"', 'id: "path:user_id"'),
        "routes.yaml:10:86: routes[0].capture[0].id: 'path:user_id' names no placeholder of "
        "/api/users (has: none)",
    ),
    (
        "version-missing",
        BASE.replace("version: 1\n", ""),
        "routes.yaml:1:1: missing required key 'version'",
    ),
    (
        "version-unsupported",
        BASE.replace("version: 1", "version: 2"),
        "routes.yaml:1:10: version: unsupported version 2 (this gateway reads 1)",
    ),
    (
        "bad-duration",
        replace("    split: {legacy: 100}", "    split: {legacy: 100}\n    timeout: 10 seconds"),
        "routes.yaml:13:14: routes[1].timeout: expected a duration such as 250ms, 10s or 1m, "
        'got a string ("10 seconds")',
    ),
    (
        "unknown-method",
        replace("methods: [GET, POST, PUT]", "methods: [GET, FETCH]"),
        "routes.yaml:7:48: routes[0].match.methods[1]: expected one of GET, HEAD, POST, PUT, "
        "PATCH, DELETE, OPTIONS, TRACE, got \"FETCH\" (did you mean 'PATCH'?)",
    ),
    (
        "two-path-kinds",
        replace("{prefix: /api/users,", "{prefix: /api/users, exact: /api/users,"),
        "routes.yaml:7:12: routes[0].match: expected at most one of prefix, exact, regex, "
        "got prefix, exact",
    ),
    (
        "sticky-needs-one-source",
        replace("    split: {legacy: 100}", "    split: {legacy: 100}\n    sticky: {}"),
        "routes.yaml:13:13: routes[1].sticky: expected exactly one of header, cookie, got none",
    ),
    (
        "shadow-writes-not-allowed",
        replace(
            "    split: {legacy: 100}",
            "    split: {legacy: 100}\n    shadow: {backend: users-v2, methods: [GET, POST]}",
        ),
        "routes.yaml:13:42: routes[1].shadow.methods: shadowing writes (POST) "
        "needs allow_writes: true",
    ),
    (
        "shadow-ignore-not-a-pointer",
        replace(
            "    split: {legacy: 100}",
            "    split: {legacy: 100}\n    shadow: {backend: users-v2, ignore: [/ok, updated_at]}",
        ),
        "routes.yaml:13:47: routes[1].shadow.ignore[1]: 'updated_at' is neither a JSON pointer "
        "(/a/*/b) nor header:NAME",
    ),
    (
        "empty-document",
        "# nothing\n",
        "routes.yaml: the document is empty; expected a mapping with version, backends, routes",
    ),
    (
        "retry-condition",
        replace(
            "    split: {legacy: 100}",
            "    split: {legacy: 100}\n    retries: {on: [conect-failure]}",
        ),
        "routes.yaml:13:20: routes[1].retries.on[0]: expected one of connect-failure, "
        'refused-stream, reset, gateway-error, 5xx, 502, 503, 504, got "conect-failure" '
        "(did you mean 'connect-failure'?)",
    ),
]


@pytest.mark.parametrize(
    ("text", "message"), [(t, m) for _, t, m in INVALID], ids=[name for name, _, _ in INVALID]
)
def test_invalid_documents_are_refused_with_exact_message(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(text, "routes.yaml")
    assert [str(p) for p in info.value.problems] == [message]


def test_every_problem_is_reported_not_only_the_first() -> None:
    text = replace("legacy: 80}", "legacy: -1}").replace(
        "- name: default", "- name: default\n    tiemout: 1s"
    )
    with pytest.raises(ConfigError) as info:
        parse(text)
    assert [p.path for p in info.value.problems] == ["routes[0].split.legacy", "routes[1].tiemout"]


def test_unreadable_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.yaml: cannot read file"):
        load_file(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("prefix", "mode", "path", "expected"),
    [
        ("/api/users", "segment", "/api/users", True),
        ("/api/users", "segment", "/api/users/7", True),
        ("/api/users", "segment", "/api/usersX", False),
        ("/api/users", "raw", "/api/usersX", True),
        ("/api/users/", "segment", "/api/users/7", True),
        ("/", "segment", "/anything", True),
    ],
)
def test_prefix_is_segment_aware(prefix: str, mode: str, path: str, expected: bool) -> None:
    text = dedent(f"""\
        version: 1
        backends: {{legacy: {{url: "http://127.0.0.1:1"}}}}
        routes:
          - {{name: r, match: {{prefix: "{prefix}", prefix_mode: {mode}}}, split: {{legacy: 1}}}}
        """)
    assert path_matches(parse(text).routes[0].match, path) is expected
