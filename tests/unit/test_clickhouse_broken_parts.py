"""Which failed queries make reports look for broken parts: errors of stored data, by code."""

from __future__ import annotations

from clickhouse_connect.driver.exceptions import DatabaseError

from postline.common.clickhouse.broken_parts import error_code, is_corruption

# As the chdb backend raises it after a merge left a part empty under a full disk.
READ_ERROR = (
    "Code: 33. DB::Exception: Cannot read all data. Bytes read: 0. Bytes expected: 1: while "
    "pushing to view postline.delivery_events_input_mv. (CANNOT_READ_ALL_DATA)"
)
NO_ROOM = "Code: 243. DB::Exception: Cannot reserve 1.00 MiB, not enough space. (NOT_ENOUGH_SPACE)"


def test_the_code_comes_from_the_error_or_its_message() -> None:
    assert error_code(DatabaseError(READ_ERROR, code=33)) == 33
    assert error_code(RuntimeError(READ_ERROR)) == 33  # a message only
    assert error_code(ConnectionError("refused")) is None


def test_only_errors_of_stored_data_are_corruption() -> None:
    assert is_corruption(DatabaseError(READ_ERROR, code=33))
    assert is_corruption(RuntimeError("Code: 40. DB::Exception: Checksum doesn't match"))
    assert not is_corruption(DatabaseError(NO_ROOM, code=243))  # a full disk: wait, not heal
    assert not is_corruption(RuntimeError("Code: 60. Unknown table postline.error_log"))
    assert not is_corruption(TimeoutError())
