"""Deterministic slot extractors: they decide which values the LLM proposed are real.

Pure functions over the caller's text (speech recognition output, Russian or English):
no I/O, no clock (`today` is passed in), compiled patterns, linear in the text's length.
"""

from dm.extract.dates import extract_date, format_date
from dm.extract.enums import match_enum
from dm.extract.names import extract_name, grounded
from dm.extract.numbers import extract_integer
from dm.extract.phone import extract_phone, format_phone
from dm.extract.times import extract_time, format_time
from dm.extract.yesno import extract_yes_no

__all__ = [
    "extract_date",
    "extract_integer",
    "extract_name",
    "extract_phone",
    "extract_time",
    "extract_yes_no",
    "format_date",
    "format_phone",
    "format_time",
    "grounded",
    "match_enum",
]
