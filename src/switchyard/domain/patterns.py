"""Regular expressions that callers write and the server runs: a key's `regex_pattern`
(every value written to the key must match it as a whole) and the `matches` operator of
flag rules (searched in a context attribute). Both are compiled and run here, and only
here, so they speak one dialect.

The dialect is RE2's (https://github.com/google/re2/wiki/Syntax), run by RE2, whose
time is linear in the text: a pattern such as `(a+)+$`, which makes a backtracking
engine take seconds on 30 characters, takes microseconds. What that rules out, and is
refused when a pattern is saved: backreferences (`\\1`), lookahead and lookbehind
(`(?=`, `(?!`, `(?<=`, `(?<!`), possessive and atomic forms, `\\Z` (RE2 spells the end
of text `\\z`), Python-only flags such as `(?u)`. What reads differently from Python:
`\\d`, `\\w`, `\\s` and `\\b` are ASCII (`\\pL`, `\\pN` and `\\p{Greek}` name Unicode
classes), and `$` without `(?m)` is the end of the text only, never before a final
newline.

Two limits keep one match cheap, whatever the pattern and the text (the pattern's
length is its user's: 500 characters for a key, 256 for a rule):

- a compiled pattern may hold at most `MAX_PROGRAM_SIZE` RE2 instructions (counted
  repetitions such as `.{400}` unroll into many), and uses at most `MAX_MEMORY` bytes;
- a text longer than `MAX_TEXT_LENGTH` characters never matches.

Within them, a pattern built to defeat RE2's cache took at most about 50 ms on 4,096
characters on a busy 2-core machine; the patterns people write take microseconds.
"""

from __future__ import annotations

import re2

MAX_PROGRAM_SIZE = 5_000
"""RE2 instructions a compiled pattern may hold: a match costs time proportional to the
text times, at worst, this. `\\pL+` takes about 1,200, `^.{1,255}$` about 2,300."""
MAX_TEXT_LENGTH = 4_096
"""Characters of text a pattern is run on; a longer text never matches."""
MAX_MEMORY = 1 << 20
"""Bytes one compiled pattern may use (program and match cache). Past it RE2 matches
more slowly, never more than linearly; a smaller cache also gives up on a pattern that
defeats it sooner, which bounds the worst case better than a larger one."""

_NOT_SUPPORTED = (
    "backreferences, lookahead and lookbehind are not supported; see "
    "https://github.com/google/re2/wiki/Syntax"
)


class PatternError(ValueError):
    """A pattern Switchyard does not run. `str()` says why, for a person: RE2's own
    reason, or the limit passed."""


def _options() -> re2.Options:
    options = re2.Options()
    options.max_mem = MAX_MEMORY
    options.never_capture = True  # only whether it matches is asked, never the groups
    options.log_errors = False  # a refused pattern is an answer, not a server log line
    return options


_OPTIONS = _options()


class Pattern:
    """A compiled pattern. Matching never raises, whatever the text."""

    __slots__ = ("_regexp", "text")

    def __init__(self, text: str, regexp: re2._Regexp) -> None:
        self.text = text
        self._regexp = regexp

    def search(self, text: str) -> bool:
        """Whether the pattern matches somewhere in `text` (`re.search`); never for a
        text longer than MAX_TEXT_LENGTH."""
        return len(text) <= MAX_TEXT_LENGTH and self._regexp.search(text) is not None

    def fullmatch(self, text: str) -> bool:
        """Whether the pattern matches `text` as a whole (`re.fullmatch`); never for a
        text longer than MAX_TEXT_LENGTH."""
        return len(text) <= MAX_TEXT_LENGTH and self._regexp.fullmatch(text) is not None

    def __repr__(self) -> str:
        return f"Pattern({self.text!r})"


def compile_pattern(text: str) -> Pattern:
    """`text` compiled. Raises PatternError saying why for a pattern RE2 cannot compile
    (its syntax, or a program past MAX_PROGRAM_SIZE or MAX_MEMORY)."""
    try:
        regexp = re2.compile(text, _OPTIONS)
    except re2.error as error:
        raise PatternError(_reason(error)) from None
    except (UnicodeEncodeError, TypeError):
        raise PatternError("must be valid UTF-8 text (it holds an unpaired surrogate)") from None
    size = regexp.programsize
    if size > MAX_PROGRAM_SIZE:
        raise PatternError(
            f"is too costly to run: it compiles to {size} instructions, at most "
            f"{MAX_PROGRAM_SIZE} are allowed (counted repetitions such as .{{400}} and large "
            "classes such as \\pL repeated many times unroll into many)"
        )
    return Pattern(text, regexp)


def _reason(error: re2.error) -> str:
    raw = error.args[0] if error.args else ""
    reason = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    if "too large" in reason:
        return (
            f"is too costly to run ({reason}): it would compile to more than "
            f"{MAX_PROGRAM_SIZE} instructions"
        )
    if reason.startswith(("invalid escape sequence", "invalid perl operator")):
        return f"is not RE2 syntax ({reason}): {_NOT_SUPPORTED}"
    return f"is not a valid regular expression (RE2: {reason})"


__all__ = [
    "MAX_MEMORY",
    "MAX_PROGRAM_SIZE",
    "MAX_TEXT_LENGTH",
    "Pattern",
    "PatternError",
    "compile_pattern",
]
