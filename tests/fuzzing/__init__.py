"""Every file format gouache reads, and the server's request body, read in hostile variants;
shared by ``tests/test_fuzz.py`` (a short seeded run in ``make test``) and ``benchmarks/fuzz.py``
(many more examples, a table of what each reader did).

A ``Format`` (``formats.py``) writes valid originals into a folder, puts a variant
(``variants.py``, ``media.py``) in place of one of its files and calls the reader gouache uses
for it; ``run_format`` (``run.py``) counts how each read ended:

    valid     the reader returned, and the format's own check finds nothing wrong with what
    refused   a one-line GouacheError (the server: a 4xx answer)
    failure   any other exception, a message of several lines, a 5xx answer, no answer in time
"""
from .formats import FILE_FORMATS, FORMATS, REQUEST, Context, Format
from .run import HEADER, Tally, attempt, run_format
from .variants import SPECIALS, Variant

__all__ = ["Format", "Context", "FORMATS", "FILE_FORMATS", "REQUEST", "SPECIALS", "Variant", "Tally", "HEADER",
           "attempt", "run_format"]
