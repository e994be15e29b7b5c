"""Cross-document checks: one table of documents whose shape is fine but whose values
disagree with each other, with the exact message each must produce."""

from __future__ import annotations

import pytest

from gateway.capture.rules import compile_rules
from gateway.config.checks import cross_check, placeholder_problem
from gateway.config.model import Capture
from gateway.config.schema import INVALID, Checker
from gateway.config.spec import DOCUMENT
from gateway.config.yamlsource import load

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


def replace(old: str, new: str) -> str:
    assert old in BASE, old
    return BASE.replace(old, new, 1)


def cross_problems(text: str) -> list[str]:
    """The problems :func:`cross_check` finds in a document whose shape is valid."""
    source = load(text, "routes.yaml")
    ck = Checker(source, "routes.yaml")
    data = DOCUMENT.check(source.data, "", ck)
    assert data is not INVALID and ck.problems == []
    cross_check(data, ck)
    return [str(p) for p in ck.problems]


def with_capture(path: str, id: str = "response:/id") -> str:
    return replace(
        'path: /api/users, event: UserRegistered, aggregate: user, id: "response:/id"',
        f'path: "{path}", event: UserRegistered, aggregate: user, id: "{id}"',
    )


INVALID_CASES: list[tuple[str, str, str]] = [
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
        "capture-placeholder-twice",
        with_capture("/api/users/{a}/{a}"),
        "routes.yaml:10:30: routes[0].capture[0].path: placeholder {a} appears more than once "
        "in /api/users/{a}/{a}",
    ),
    (
        "capture-placeholder-not-a-name",
        with_capture("/api/users/{1a}"),
        "routes.yaml:10:30: routes[0].capture[0].path: placeholder {1a} in /api/users/{1a} is "
        "not a name (letters, digits and _, not starting with a digit)",
    ),
    (
        "capture-placeholder-empty",
        with_capture("/api/users/{}"),
        "routes.yaml:10:30: routes[0].capture[0].path: placeholder {} in /api/users/{} is "
        "not a name (letters, digits and _, not starting with a digit)",
    ),
    (
        "capture-without-legacy-backend",
        BASE.replace("legacy", "monolith"),
        "routes.yaml:10:9: routes[0].capture[0]: no backend is marked legacy: true (and none is "
        "named 'legacy'); say which backends' writes are captured with backends: [...]",
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
]


@pytest.mark.parametrize(
    ("text", "message"),
    [(t, m) for _, t, m in INVALID_CASES],
    ids=[name for name, _, _ in INVALID_CASES],
)
def test_cross_document_problems_have_exact_messages(text: str, message: str) -> None:
    assert cross_problems(text) == [message]


def test_a_consistent_document_has_no_problems() -> None:
    assert cross_problems(BASE) == []
    assert cross_problems(with_capture("/api/users/{user_id}", "path:user_id")) == []


def test_a_marked_legacy_backend_satisfies_captures() -> None:
    text = BASE.replace("legacy", "monolith").replace(
        '"http://127.0.0.1:9001"}', '"http://127.0.0.1:9001", legacy: true}'
    )
    assert cross_problems(text) == []


@pytest.mark.parametrize(
    "template",
    ["/a", "/a/{id}", "/a/{id}/b/{other_id}", "/a/{_x}-{y2}", "/a/{class}"],
)
def test_accepted_placeholders_compile_into_capture_rules(template: str) -> None:
    assert placeholder_problem(template) is None
    capture = Capture("POST", template, "E", "a", "response:/id")
    (rule,) = compile_rules((capture,))
    concrete = template.replace("{", "").replace("}", "")
    assert rule.pattern.fullmatch(concrete) is not None


ROLLOUT_BASE = """\
version: 1
backends:
  legacy: {url: "http://127.0.0.1:9001"}
  orders-v2: {url: "http://127.0.0.1:9002"}
routes:
  - name: orders
    split: {orders-v2: 0, legacy: 100}
    shadow: {backend: orders-v2}
    rollout:
      backend: orders-v2
      steps: [5, 25, {weight: 100, approve: true}]
      gates: {shadow_match: {min: 99.5%}}
"""


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "backend: orders-v2\n      steps",
            "backend: orders-v3\n      steps",
            "routes.yaml:10:16: routes[0].rollout.backend: 'orders-v3' is not in route "
            "'orders' split (orders-v2, legacy); a rollout moves weight between them",
        ),
        (
            "backend: orders-v2\n      steps",
            "backend: legacy\n      steps",
            "routes.yaml:10:16: routes[0].rollout.backend: 'legacy' is the legacy or "
            "fallback backend; a rollout steps up a new one",
        ),
        (
            "steps: [5, 25,",
            "steps: [5, 5,",
            "routes.yaml:11:18: routes[0].rollout.steps[1].weight: step weights must "
            "increase: 5 follows 5",
        ),
        (
            "    shadow: {backend: orders-v2}\n",
            "",
            "routes.yaml:11:29: routes[0].rollout.gates.shadow_match: the shadow_match gate "
            "needs shadow: {backend: orders-v2} on route 'orders' (the comparisons it judges)",
        ),
    ],
)
def test_rollout_cross_checks(old: str, new: str, message: str) -> None:
    assert old in ROLLOUT_BASE
    assert cross_problems(ROLLOUT_BASE.replace(old, new, 1)) == [message]


def test_a_consistent_rollout_has_no_problems() -> None:
    assert cross_problems(ROLLOUT_BASE) == []
