"""Request validation, cursors and idempotency ids, without a database."""

import base64
import json

import pytest

from services.api import schemas
from services.api.listing import PageKey


def test_cursor_round_trips() -> None:
    key = PageKey(1_780_000_000_123, "0b9f-id")
    assert schemas.decode_cursor(schemas.encode_cursor(key)) == key


@pytest.mark.parametrize("created_at_ms", [2**63 - 1, -(2**63), 0])
def test_cursor_numbers_in_the_bigint_range_round_trip(created_at_ms: int) -> None:
    key = PageKey(created_at_ms, "é" * 255)
    assert schemas.decode_cursor(schemas.encode_cursor(key)) == key


def _cursor(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!",
        "bnVsbA",
        "WyJhIiwiYiJd",
        "WzEsMl0",
        _cursor(json.dumps([2**63, "x"]).encode()),
        _cursor(json.dumps([-(2**63) - 1, "x"]).encode()),
        _cursor(json.dumps([99999999999999999999, "x"]).encode()),
        _cursor(json.dumps([True, "x"]).encode()),
        _cursor(json.dumps([1, "a\u0000b"]).encode()),
        _cursor(json.dumps([1, ""]).encode()),
        _cursor(json.dumps([1, "x" * 256]).encode()),
        _cursor(b'[1,"\\ud800"]'),
        _cursor(b"[" * 5000),
    ],
)
def test_bad_cursors_are_invalid_input(cursor: str) -> None:
    with pytest.raises(schemas.InvalidInput, match="cursor"):
        schemas.decode_cursor(cursor)


def test_idempotency_key_names_one_workflow() -> None:
    first = schemas.idempotency_workflow_id("order-42")
    assert first == schemas.idempotency_workflow_id("order-42")
    assert first != schemas.idempotency_workflow_id("order-43")


@pytest.mark.parametrize("key", ["", "a b", "ключ", "x" * 256])
def test_malformed_idempotency_keys_are_invalid_input(key: str) -> None:
    with pytest.raises(schemas.InvalidInput, match="Idempotency-Key"):
        schemas.idempotency_workflow_id(key)


@pytest.mark.parametrize(("raw", "expected"), [(None, 50), ("1", 1), ("500", 500)])
def test_limits(raw: str | None, expected: int) -> None:
    assert schemas.parse_limit(raw) == expected


@pytest.mark.parametrize(
    "raw", ["0", "501", "-1", "1.5", "ten", "", "\u00b2", "\uff15", "\u0663", "0" * 5000 + "1"]
)
def test_bad_limits(raw: str) -> None:
    with pytest.raises(schemas.InvalidInput, match="limit"):
        schemas.parse_limit(raw)


def test_status_filter_is_case_insensitive_and_checked() -> None:
    assert schemas.parse_status("pending") == "PENDING"
    with pytest.raises(schemas.InvalidInput, match="status"):
        schemas.parse_status("RUNNING")
    with pytest.raises(schemas.InvalidInput, match="status"):
        schemas.parse_status("\u017fuccess")  # long s: "SUCCESS" once upper-cased


@pytest.mark.parametrize(
    "workflow_id",
    ["a842a02f-9da3-40e5-82c0-9e917bfb1587", "order-42", "x", "é" * 255, "with space", "a/b"],
)
def test_workflow_ids_within_the_rule(workflow_id: str) -> None:
    assert schemas.parse_workflow_id(workflow_id) == workflow_id


@pytest.mark.parametrize(
    "workflow_id",
    ["", "x" * 256, "a\x00b", "a\x01b", "tab\t", "a\x7fb", "a\x85b", "a\ud800b"],
)
def test_workflow_ids_outside_the_rule_are_invalid_input(workflow_id: str) -> None:
    with pytest.raises(schemas.InvalidInput, match="workflow id must be"):
        schemas.parse_workflow_id(workflow_id)


def test_a_query_parameter_given_twice_is_invalid_input() -> None:
    assert schemas.single_value("limit", []) is None
    assert schemas.single_value("limit", ["5"]) == "5"
    with pytest.raises(schemas.InvalidInput, match="limit must be given at most once"):
        schemas.single_value("limit", ["5", "5"])
