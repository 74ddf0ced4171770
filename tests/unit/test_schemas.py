"""Request validation, cursors and idempotency ids, without a database."""

import pytest
from pydantic import ValidationError

from services import contract
from services.api import schemas
from services.api.store import PageKey


def test_empty_request_takes_the_seed_defaults() -> None:
    request = schemas.EnqueueRequest()
    assert request.workflow_args() == [contract.DEFAULT_NUM_STEPS, contract.DEFAULT_STEP_SECONDS]
    assert request.priority is None


def test_integer_step_seconds_are_accepted_as_seconds() -> None:
    assert schemas.EnqueueRequest.model_validate_json(b'{"step_seconds": 0}').step_seconds == 0.0


@pytest.mark.parametrize(
    "body",
    [
        b'{"num_steps": "3"}',
        b'{"num_steps": 3.0}',
        b'{"num_steps": false}',
        b'{"num_steps": 1001}',
        b'{"step_seconds": 60.5}',
        b'{"priority": 0}',
        b'{"extra": 1}',
        b"[]",
    ],
)
def test_invalid_requests_are_rejected(body: bytes) -> None:
    with pytest.raises(ValidationError):
        schemas.EnqueueRequest.model_validate_json(body)


def test_cursor_round_trips() -> None:
    key = PageKey(1_780_000_000_123, "0b9f-id")
    assert schemas.decode_cursor(schemas.encode_cursor(key)) == key


@pytest.mark.parametrize("cursor", ["", "!!!", "bnVsbA", "WyJhIiwiYiJd", "WzEsMl0"])
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


@pytest.mark.parametrize("raw", ["0", "501", "-1", "1.5", "ten", ""])
def test_bad_limits(raw: str) -> None:
    with pytest.raises(schemas.InvalidInput, match="limit"):
        schemas.parse_limit(raw)


def test_status_filter_is_case_insensitive_and_checked() -> None:
    assert schemas.parse_status("pending") == "PENDING"
    with pytest.raises(schemas.InvalidInput, match="status"):
        schemas.parse_status("RUNNING")
