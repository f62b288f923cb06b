"""atheris (libFuzzer) target for the X12 tokenizer and the 835/999/277CA parsers; run by hand, not by pytest:

    python -m tests.fuzz.atheris_x12 -atheris_runs=200000 [corpus_dir]

The real samples (tests.conftest.X12_FIXTURES) seed the corpus. Any exception other than an X12Error that names
its segment (or says the data holds no segments / no set of the kind) is a crash and stops the run with the input
saved by libFuzzer (crash-<sha1>)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from integrations.x12.ack277 import parse_277ca
    from integrations.x12.ack999 import parse_999
    from integrations.x12.reader import X12Error, parse_envelopes, read_segments
    from integrations.x12.remit835 import parse_835


def _clear(exc: X12Error) -> None:
    if not (exc.message and (exc.segment_position is not None or exc.segment_id or str(exc).startswith("no "))):
        raise AssertionError(f"unlocated X12Error: {exc!s}")


def test_one_input(data: bytes) -> None:
    try:
        segments = read_segments(data)
        parse_envelopes(segments, check_counts=False, check_control_numbers=False)
    except X12Error as exc:
        _clear(exc)
    for parse in (parse_835, parse_999, parse_277ca):
        try:
            parse(data)
        except X12Error as exc:
            _clear(exc)


def seed_corpus() -> str:
    from tests.fuzz.mutations import X12_SAMPLES

    corpus = Path(tempfile.mkdtemp(prefix="x12-corpus-"))
    for name, data in X12_SAMPLES.items():
        (corpus / name.replace("/", "__")).write_bytes(data[:16384])
    return str(corpus)


def main() -> None:
    args = list(sys.argv)
    if not any(not a.startswith("-") for a in args[1:]):
        args.append(seed_corpus())
    if not any(a.startswith("-max_len=") for a in args):
        args.append("-max_len=16384")  # the largest samples (400 KB) would run a few inputs a second
    atheris.Setup(args, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
