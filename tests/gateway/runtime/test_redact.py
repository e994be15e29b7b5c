"""Credentials masked in the configuration the admin API shows."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.runtime.redact import MASK, is_sensitive, redact, redact_text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://user:hunter2@db:5432/outbox", "postgresql://user:***@db:5432/outbox"),
        ("postgresql://user:p@ss@db/outbox", "postgresql://user:***@db/outbox"),
        ("postgresql://:hunter2@db/outbox", "postgresql://:***@db/outbox"),
        ("postgresql://user@db/outbox", "postgresql://user@db/outbox"),
        (
            "postgresql://db/outbox?password=hunter2&sslmode=require",
            "postgresql://db/outbox?password=***&sslmode=require",
        ),
        (
            "host=db user=gw password=hunter2 dbname=outbox",
            "host=db user=gw password=*** dbname=outbox",
        ),
        ("host=db password='hunt er2'", "host=db password=***"),
        ("http://127.0.0.1:9001/a@b", "http://127.0.0.1:9001/a@b"),
        ("sqlite:///./strangler-outbox.db", "sqlite:///./strangler-outbox.db"),
        ("events.{aggregate}", "events.{aggregate}"),
    ],
)
def test_redact_text(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    ("name", "sensitive"),
    [
        ("password", True),
        ("db_password", True),
        ("sslpassword", True),
        ("client_secret", True),
        ("token", True),
        ("apiKey", True),
        ("x-api-key", True),
        ("private.key", True),
        ("Authorization", True),
        ("token_env", False),  # names a variable, not its value
        ("metrics_token_env", False),
        ("keyspace", False),
        ("monkey", False),
        ("host_header", False),
        ("url", False),
    ],
)
def test_sensitive_names(name: str, sensitive: bool) -> None:
    assert is_sensitive(name) is sensitive


def test_redact_masks_urls_and_sensitive_fields_at_any_depth() -> None:
    config: dict[str, Any] = {
        "admin": {"listen": "127.0.0.1:9901", "token_env": "STRANGLER_ADMIN_TOKEN"},
        "outbox": {"url": "postgresql://gw:hunter2@db/outbox", "max_body_bytes": 1024},
        "shadow_store": {"url": "postgresql://shadow:s3cret@db/shadow"},
        "routes": [
            {
                "name": "internal",
                "match": {
                    "headers": {"x-api-key": {"exact": "k-123"}, "x-beta": {"exact": "1"}},
                    "query": {"token": {"present": True}},
                },
            }
        ],
        "plugins": {"vault": {"secret": 12345, "password": "", "tls": {"key": ["a", "b"]}}},
    }
    shown = redact(config)
    assert shown["admin"] == config["admin"]
    assert shown["outbox"] == {"url": "postgresql://gw:***@db/outbox", "max_body_bytes": 1024}
    assert shown["shadow_store"]["url"] == "postgresql://shadow:***@db/shadow"
    headers = shown["routes"][0]["match"]["headers"]
    assert headers == {"x-api-key": {"exact": MASK}, "x-beta": {"exact": "1"}}
    assert shown["routes"][0]["match"]["query"] == {"token": {"present": True}}
    assert shown["plugins"]["vault"] == {"secret": MASK, "password": "", "tls": {"key": [MASK] * 2}}
    for secret in ("hunter2", "s3cret", "k-123", "12345"):
        assert secret not in repr(shown)
    assert config["outbox"]["url"] == "postgresql://gw:hunter2@db/outbox"  # a copy
