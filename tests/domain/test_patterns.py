"""The one place caller patterns are compiled and run: RE2, its limits, its reasons."""

from __future__ import annotations

import pytest

from switchyard.domain.patterns import (
    MAX_PROGRAM_SIZE,
    MAX_TEXT_LENGTH,
    PatternError,
    compile_pattern,
)


def test_search_finds_anywhere_and_fullmatch_needs_the_whole_text() -> None:
    pattern = compile_pattern("[a-z]+-[0-9]+")

    assert pattern.search("ticket ops-42 open") and not pattern.fullmatch("ticket ops-42 open")
    assert pattern.fullmatch("ops-42")
    assert not pattern.search("OPS-42")


def test_dollar_is_the_end_of_the_text_only() -> None:
    """Python's `$` also matches before a final newline; RE2's, without (?m), does not."""
    assert not compile_pattern("ops$").search("ops\n")
    assert compile_pattern("(?m)ops$").search("ops\n")


def test_a_program_past_the_limit_is_refused_saying_so() -> None:
    compile_pattern(r"^.{1,255}$")  # about 2,300 instructions: taken
    with pytest.raises(PatternError) as caught:
        compile_pattern(r"a.{700}z")
    assert f"at most {MAX_PROGRAM_SIZE}" in str(caught.value)
    with pytest.raises(PatternError, match="too costly"):
        compile_pattern(r"\pL{1000}")  # past RE2's own memory budget


def test_text_past_the_limit_never_matches() -> None:
    anything = compile_pattern("")

    assert anything.search("x" * MAX_TEXT_LENGTH) and anything.fullmatch("")
    assert not anything.search("x" * (MAX_TEXT_LENGTH + 1))


def test_a_pattern_that_is_no_utf_8_is_refused() -> None:
    with pytest.raises(PatternError, match="UTF-8"):
        compile_pattern("\ud800")
