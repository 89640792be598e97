"""Every reader of a file gouache reads, and the server, given hostile variants of valid input
(``tests/fuzzing/`` draws them with hypothesis and reads them): each read gives a valid
object or a one-line GouacheError, and the server answers 2xx or 4xx; never another exception,
a message of several lines, a 5xx or a hang.

The variants are the same on every run (derandomized) and few (EXAMPLES a format, besides a
folder, a FIFO and symlinks in the file's place), so that the whole file runs in well under a
minute on two cores; ``python benchmarks/fuzz.py`` draws 2000 a format. Each format's counts
are printed (``pytest -s``) and recorded as the test's ``fuzz`` property.
"""
from __future__ import annotations

import pytest

import fuzzing

EXAMPLES = 50  # hypothesis variants a format

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def context(tmp_path_factory) -> fuzzing.Context:
    return fuzzing.Context(tmp_path_factory.mktemp("fuzz-shared"))


def _check(tally: fuzzing.Tally, record_property) -> None:
    print(f"\n{fuzzing.HEADER}\n{tally.row()}")
    record_property("fuzz", tally.row())
    assert tally.count > len(fuzzing.SPECIALS), tally.row()
    assert not tally.failures, f"reads that failed:\n{fuzzing.HEADER}\n{tally.report(examples=10)}"


@pytest.mark.parametrize("fmt", fuzzing.FILE_FORMATS, ids=[f.name for f in fuzzing.FILE_FORMATS])
def test_a_reader_gives_a_valid_object_or_one_line(fmt, context, tmp_path, record_property):
    _check(fuzzing.run_format(fmt, tmp_path, context, examples=EXAMPLES), record_property)


def test_the_server_answers_every_body_with_2xx_or_4xx(client, context, tmp_path, record_property):
    context.client = client
    _check(fuzzing.run_format(fuzzing.REQUEST, tmp_path, context, examples=EXAMPLES), record_property)
