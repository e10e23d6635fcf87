"""File sizes as people read them: one wording for the CLI, the app and error messages."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from p2pnode.files import human_size


def test_sizes_read_as_people_expect():
    """Bytes up to 1023, then one decimal in the largest binary unit below the size."""
    assert human_size(None) == "?"
    assert human_size(0) == "0 bytes"
    assert human_size(1023) == "1023 bytes"
    assert human_size(1536) == "1.5 KiB"
    assert human_size(2**20 - 1) == "1.0 MiB"  # not "1024.0 KiB"
    assert human_size(12_900_000) == "12.3 MiB"
    assert human_size(3 * 2**40) == "3.0 TiB"


@given(st.integers(1024, 2**60))
def test_the_number_shown_is_below_1024_until_tebibytes(size):
    """Every size past a KiB shows a number under 1024 (TiB grows without bound)."""
    number, unit = human_size(size).split()
    assert unit in ("KiB", "MiB", "GiB", "TiB")
    assert unit == "TiB" or float(number) < 1024
