"""Step errors as DBOS stores them: from portable JSON, or read from a pickle's opcodes, never
unpickled."""

import base64
import os
import pickle

from dbos._error import DBOSMaxStepRetriesExceeded
from dbos._serialization import DBOSDefaultSerializer, serialize_exception

from services.api.steps import StepError, decode_error


class PaymentDeclined(Exception):
    pass


def test_a_portable_error_shows_its_name_and_message() -> None:
    stored, serialization = serialize_exception(
        PaymentDeclined("card 4242 declined"), "portable_json", DBOSDefaultSerializer
    )
    assert decode_error(stored, serialization) == StepError("PaymentDeclined", "card 4242 declined")


def test_a_pickled_error_is_read_from_its_opcodes_never_unpickled() -> None:
    stored, serialization = serialize_exception(
        PaymentDeclined("card 4242 declined"), None, DBOSDefaultSerializer
    )
    assert serialization == "py_pickle"
    assert decode_error(stored, serialization) == StepError("PaymentDeclined", "card 4242 declined")


def test_a_step_out_of_retries_shows_the_cause_of_its_attempts() -> None:
    exhausted = DBOSMaxStepRetriesExceeded(
        "call_service", 5, [PaymentDeclined("try 1"), PaymentDeclined("try 2")]
    )
    stored, serialization = serialize_exception(exhausted, None, DBOSDefaultSerializer)
    assert decode_error(stored, serialization) == StepError(
        "DBOSMaxStepRetriesExceeded", "call_service (PaymentDeclined: try 1)"
    )


class _Boom:
    """A pickle that would run a command if it were unpickled."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("touch /tmp/should-never-exist",))


def test_a_hostile_pickle_is_only_read() -> None:
    stored = base64.b64encode(pickle.dumps(_Boom())).decode()
    error = decode_error(stored, "py_pickle")
    assert error == StepError("system", "touch /tmp/should-never-exist")
    assert not os.path.exists("/tmp/should-never-exist")


def test_what_is_not_a_pickle_is_named_not_shown() -> None:
    for stored in ("not base64!", base64.b64encode(b"\x80\x04garbage").decode(), ""):
        assert decode_error(stored, "py_pickle").message == "not shown: stored as py_pickle"
    assert decode_error("abc", "custom_serializer").message.startswith("not shown")


def test_a_malformed_portable_error_is_not_a_crash() -> None:
    assert decode_error("{not json", "portable_json").message.startswith("not shown")
    assert decode_error('{"message": 5}', "portable_json").name is None


def test_times_beyond_what_a_datetime_holds_are_clamped_not_a_crash() -> None:
    from services.api.steps import StepRecord
    from services.api.views import steps_json

    far = StepRecord(1, "DBOS.sleep", "RUNNING", 0, 10**15, None, None)
    (step,) = steps_json("w", [far])["steps"]
    assert (step["started_at"], step["completed_at"]) == (
        "1970-01-01T00:00:00.000+00:00",
        "9999-12-31T23:59:59.999+00:00",
    )


def test_a_deeply_nested_portable_error_is_not_a_crash() -> None:
    assert decode_error("[" * 100_000 + "]" * 100_000, "portable_json").name is None
