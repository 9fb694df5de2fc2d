"""A flag's texts with a format (owner_email, documentation_url) are refused for their
length alone when they are too long for their column: not parsed as well, which took the
server a second or more over a megabyte (found by the fuzz suite)."""

from __future__ import annotations

import pytest

from switchyard.domain.errors import InvalidArgument
from switchyard.domain.flags import FeatureFlag, check_flag


@pytest.mark.parametrize(("field", "width"), [("owner_email", 255), ("documentation_url", 500)])
def test_a_text_too_long_for_its_column_is_refused_for_its_length_alone(
    field: str, width: int
) -> None:
    flag = FeatureFlag(key="long", name="long", **{field: "\U0001f600" * 1_000_000})
    with pytest.raises(InvalidArgument) as refused:
        check_flag(flag)
    assert [(v.field, v.description) for v in refused.value.violations] == [
        (f"flag.{field}", f"must be at most {width} characters")
    ]


def test_a_text_within_its_column_is_still_checked_for_its_format() -> None:
    with pytest.raises(InvalidArgument) as refused:
        check_flag(FeatureFlag(key="short", name="short", owner_email="not an address"))
    assert [v.field for v in refused.value.violations] == ["flag.owner_email"]
