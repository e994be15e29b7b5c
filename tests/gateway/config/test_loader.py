"""routes.yaml parsing: the example file, defaults, one table of invalid documents with the
exact message each must produce (file:line:column: field path: what was expected), and one
table of hostile files that ``strangler validate`` must refuse cleanly and quickly."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main
from gateway.config import ConfigError, load_file, parse, read_text
from gateway.config.yamlsource import MAX_BYTES

ROOT = Path(__file__).resolve().parents[3]

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
        "negative-weight",
        replace("legacy: 80}", "legacy: -5}"),
        "routes.yaml:8:35: routes[0].split.legacy: expected a weight >= 0, got -5",
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


def test_cross_document_problems_are_reported_by_parse() -> None:
    with pytest.raises(ConfigError) as info:
        parse(replace("{users-v2: 20, legacy: 80}", "{users-v3: 20, legacy: 80}"))
    assert [p.path for p in info.value.problems] == ["routes[0].split.users-v3"]


def test_yaml_syntax_error_names_the_position() -> None:
    with pytest.raises(ConfigError) as info:
        parse(replace("split: {legacy: 100}", "split: {legacy: 100"), "routes.yaml")
    (problem,) = info.value.problems
    assert str(problem).startswith("routes.yaml:13:1: YAML syntax error: while parsing a flow")


def test_bytes_are_read_as_utf8() -> None:
    assert parse(BASE.encode()).routes[0].name == "users"
    assert parse(b"\xef\xbb\xbf" + BASE.encode()).routes[0].name == "users"  # UTF-8 BOM


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Fail (rather than hang) when the block runs longer than ``seconds``."""

    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"took longer than {seconds}s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


LAST = BASE.count("\n") + 1  # the line a text appended to BASE starts on
# Nine levels of nine aliases: 9**9 values once expanded, from 350 bytes.
BOMB = 'a: &a ["x","x","x","x","x","x","x","x","x"]\n' + "".join(
    f"{c}: &{c} [{','.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)
CAPTURE = "path: /api/users, event"

HOSTILE: list[tuple[str, bytes, str]] = [
    ("utf-16", BASE.encode("utf-16"), ":1:1: the file starts with a UTF-16 byte order mark"),
    (
        "utf-16-no-bom",
        BASE.encode("utf-16-le"),
        ":1:2: NUL byte at offset 1: the file looks UTF-16",
    ),
    (
        "latin-1",
        (BASE + "# caf\xe9\n").encode("latin-1"),
        f":{LAST}:6: not valid UTF-8: byte 0xe9 at offset {len(BASE) + 5}",
    ),
    ("control-char", replace("default", "def\x01ault").encode(), ":11:14: U+0001 is not allowed"),
    ("too-large", b"#" * (MAX_BYTES + 1), f": the file is {MAX_BYTES + 1} bytes long"),
    ("recursive-alias", (BASE + "x: &a [1, *a]\n").encode(), f":{LAST}:4: x[1]: recursive alias"),
    ("alias-bomb", BOMB.encode(), "values once aliases are expanded; is it an alias bomb?"),
    (
        "nesting-2000",  # libyaml stops at its own limit, the pure-Python parser at ours
        (BASE + "x: " + "[" * 2000 + "]" * 2000 + "\n").encode(),
        "maximum nesting depth",
    ),
    (
        "nesting-100",
        (BASE + "x: " + "[" * 100 + "]" * 100 + "\n").encode(),
        f":{LAST}:67: exceeded the maximum nesting depth of 64",
    ),
    (
        "nesting-through-aliases",
        (BASE + "".join(f"a{i}: &a{i} [[[[[[[[[[*a{i - 1}]]]]]]]]]]\n" for i in range(1, 9)))
        .replace("*a0", "1")
        .encode(),
        "aliases exceeded the maximum nesting depth of 64",
    ),
    (
        "tag-foo",
        replace("version: 1", "version: !foo 1").encode(),
        ":1:10: unsupported YAML tag '!foo'",
    ),
    (
        "tag-python",
        (BASE + "x: !!python/name:os.system\n").encode(),
        f":{LAST}:4: unsupported YAML tag '!!python/name:os.system'",
    ),
    ("tag-set", (BASE + "x: !!set {a}\n").encode(), "unsupported YAML tag '!!set'"),
    ("tag-binary", (BASE + "x: !!binary aGk=\n").encode(), "unsupported YAML tag '!!binary'"),
    (
        "int-tag-on-text",
        replace("version: 1", 'version: !!int "abc"').encode(),
        ':1:10: version: "abc" is not a valid !!int',
    ),
    (
        "bool-tag-on-text",
        replace("version: 1", "version: !!bool maybe").encode(),
        ':1:10: version: "maybe" is not a valid !!bool',
    ),
    (
        "map-tag-on-scalar",
        replace("version: 1", "version: !!map 1").encode(),
        ":1:10: version: tag '!!map' does not fit this value",
    ),
    (
        "impossible-date",
        replace("version: 1", "version: 2024-13-45").encode(),
        ':1:10: version: expected an integer, got a string ("2024-13-45")',
    ),
    (
        "listen-port",
        (BASE + "listen: 127.0.0.1:99999\n").encode(),
        f':{LAST}:9: listen: expected a port between 1 and 65535, got 99999 in "127.0.0.1:99999"',
    ),
    (
        "admin-listen-port",
        (BASE + "admin: {listen: '127.0.0.1:0'}\n").encode(),
        f":{LAST}:17: admin.listen: expected a port between 1 and 65535, got 0",
    ),
    (
        "backend-url-port",
        replace("127.0.0.1:9002", "127.0.0.1:99999").encode(),
        ":4:19: backends.users-v2.url: expected a port between 1 and 65535, got 99999",
    ),
    (
        "integer-5000-digits",
        replace("version: 1", "version: " + "9" * 5000).encode(),
        ":1:10: version: integer too large (at most 9223372036854775807)",
    ),
    (
        "integer-above-int64",
        replace("legacy: 80}", "legacy: 9223372036854775808}").encode(),
        ":8:35: routes[0].split.legacy: integer too large",
    ),
    (
        "not-a-finite-number",
        replace(
            "split: {legacy: 100}",
            "split: {legacy: 100}\n    shadow: {backend: legacy, percent: .nan}",
        ).encode(),
        ":13:40: routes[1].shadow.percent: expected a finite number, got nan",
    ),
    (
        "regex-huge-repeat",
        replace("{prefix: /api/users,", "{regex: '/a{99999999999}',").encode(),
        ":7:20: routes[0].match.regex: repetition count 99999999999 in regular expression "
        "at position 2 is above 1000",
    ),
    (
        "regex-open-repeat",
        replace("{prefix: /api/users,", "{regex: '/a{,5000}',").encode(),
        "routes[0].match.regex: repetition count 5000",
    ),
    (
        "regex-deep-groups",
        replace(
            "{prefix: /api/users,", "{regex: '" + "(?:" * 3000 + "a" + ")" * 3000 + "',"
        ).encode(),
        ":7:20: routes[0].match.regex: invalid regular expression: too large or too deeply nested",
    ),
    (
        "capture-placeholder-twice",
        replace(CAPTURE, 'path: "/api/users/{a}/{a}", event').encode(),
        ":10:30: routes[0].capture[0].path: placeholder {a} appears more than once",
    ),
    (
        "capture-placeholder-not-a-name",
        replace(CAPTURE, 'path: "/api/users/{1a}", event').encode(),
        ":10:30: routes[0].capture[0].path: placeholder {1a} in /api/users/{1a} is not a name",
    ),
]


@pytest.mark.parametrize(
    ("data", "fragment"), [(d, f) for _, d, f in HOSTILE], ids=[n for n, _, _ in HOSTILE]
)
def test_validate_refuses_hostile_files_cleanly(
    data: bytes,
    fragment: str,
    parser: type[Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "routes.yaml"
    path.write_bytes(data)
    with deadline(10):
        code = main(["validate", "-c", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    lines = err.splitlines()
    assert lines and all(line.startswith(f"{path}") for line in lines), err
    assert (f"{path}{fragment}" if fragment.startswith(":") else fragment) in err, err


def test_validate_reads_a_device_without_hanging(capsys: pytest.CaptureFixture[str]) -> None:
    with deadline(10):
        code = main(["validate", "-c", "/dev/zero"])
    assert code == 2
    assert "/dev/zero" in capsys.readouterr().err


def test_read_text_refuses_what_load_file_refuses(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_bytes(BASE.encode("utf-16"))
    with pytest.raises(ConfigError, match="UTF-16 byte order mark"):
        read_text(path)
    path.write_bytes(BASE.encode())
    assert read_text(path) == BASE


ROLLOUT_DOC = """\
version: 1
backends:
  legacy: {url: "http://127.0.0.1:9001"}
  orders-v2: {url: "http://127.0.0.1:9002"}
routes:
  - name: orders-reads
    match: {prefix: /api/orders, methods: [GET, HEAD]}
    split: {orders-v2: 0, legacy: 100}
    sticky: {header: x-user-id}
    shadow: {backend: orders-v2, percent: 100}
    rollout:
      backend: orders-v2
      steps: [5, 25, 50, {weight: 75, approve: true, interval: 5m}, 100]
      interval: 1m
      min_requests: 200
      gates:
        error_rate: {max: 1%, max_over_legacy: 0.5%}
        latency_p99: {max_ratio: 1.25}
        shadow_match: {min: 99.5%, min_compared: 100}
      failures_before_rollback: 2
"""


def test_the_rollout_block_reads_into_the_model() -> None:
    from gateway.config.model import Gates, Rollout, Step

    rollout = parse(ROLLOUT_DOC).routes[0].rollout
    assert rollout == Rollout(
        backend="orders-v2",
        steps=(Step(5), Step(25), Step(50), Step(75, True, 300.0), Step(100)),
        interval=60.0,
        min_requests=200,
        gates=Gates(0.01, 0.005, 1.25, 0.995, 100),
        failures_before_rollback=2,
    )
    assert rollout.interval_of(3) == 300.0 and rollout.interval_of(0) == 60.0


def test_rollout_defaults_judge_errors_and_latency_not_shadow() -> None:
    text = ROLLOUT_DOC.split("      interval: 1m")[0].replace(", interval: 5m", "")
    rollout = parse(text).routes[0].rollout
    assert rollout is not None
    assert rollout.gates.error_rate_max == 0.01 and rollout.gates.latency_p99_max_ratio == 1.25
    assert rollout.gates.shadow_match_min is None
    assert (rollout.interval, rollout.min_requests, rollout.failures_before_rollback) == (
        60,
        200,
        2,
    )
    assert parse(text).rollout_store_url == "sqlite:///./strangler-rollout.db"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "max: 1%",
            "max: 1",
            "routes.yaml:17:27: routes[0].rollout.gates.error_rate.max: expected a percentage "
            'such as "1%" or "99.5%", got an integer (1)',
        ),
        (
            "min: 99.5%",
            "min: 199.5%",
            "routes.yaml:19:29: routes[0].rollout.gates.shadow_match.min: expected a percentage "
            'between 0% and 100%, got "199.5%"',
        ),
        (
            "steps: [5,",
            "steps: [500,",
            "routes.yaml:13:15: routes[0].rollout.steps[0].weight: expected the new backend's "
            "weight <= 100, got 500",
        ),
    ],
)
def test_rollout_shape_problems_name_the_field(old: str, new: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(ROLLOUT_DOC.replace(old, new, 1))
    assert [str(p) for p in info.value.problems] == [message]
