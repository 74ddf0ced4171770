"""Step errors as DBOS stores them: shown from portable JSON, never unpickled."""

from dbos._serialization import DBOSDefaultSerializer, serialize_exception

from services.api.steps import StepError, decode_error


class PaymentDeclined(Exception):
    pass


def test_a_portable_error_shows_its_name_and_message() -> None:
    stored, serialization = serialize_exception(
        PaymentDeclined("card 4242 declined"), "portable_json", DBOSDefaultSerializer
    )
    assert decode_error(stored, serialization) == StepError("PaymentDeclined", "card 4242 declined")


def test_a_pickled_error_is_named_not_opened() -> None:
    stored, serialization = serialize_exception(
        PaymentDeclined("secret"), None, DBOSDefaultSerializer
    )
    error = decode_error(stored, serialization)
    assert error.name is None and "secret" not in error.message
    assert serialization in error.message


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
