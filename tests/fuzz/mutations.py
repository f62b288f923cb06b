"""Hypothesis strategies for hostile files, shared by the fuzz tests and the atheris targets: the team's real X12
samples mutated (bytes flipped, ranges cut or repeated, delimiters inserted or swapped, truncated), random bytes."""

from __future__ import annotations

from pathlib import Path

from hypothesis import strategies as st

from tests.conftest import X12_FIXTURES

DELIMITERS = b"*~:^|!\n\r\x1d\x1e\x1f\x00 "
# Digits and what passes for one: latin-1 '\xb2' is '²', which str.isdigit() accepts and int() refuses.
DIGITS = b"0123456789.-E\xb2\xb3\xb9"
X12_SAMPLES: dict[str, bytes] = {
    f"{p.parent.name}/{p.name}": p.read_bytes()
    for p in sorted(Path(X12_FIXTURES).rglob("*"))
    if p.is_file() and p.parent.name in ("835", "999", "277ca", "837p")
}


def _apply(data: bytes, ops: list[tuple[int, int, int, bytes]]) -> bytes:
    out = bytearray(data)
    for kind, at, size, payload in ops:
        i = at % (len(out) + 1)
        if kind == 0 and out:  # flip one byte
            out[min(i, len(out) - 1)] = payload[0] if payload else 0
        elif kind == 1:  # cut a range
            del out[i : i + size]
        elif kind == 2:  # insert delimiters or digits
            out[i:i] = payload
        elif kind == 3:  # truncate
            del out[i:]
        elif kind == 4 and out:  # repeat a range (a segment twice, a loop twice)
            out[i:i] = out[i : i + size * 8]
        elif kind == 5 and payload:  # swap one delimiter for another everywhere ("delimiter games")
            a, b = payload[0], DELIMITERS[size % len(DELIMITERS)]
            out = bytearray(bytes(out).replace(bytes([a]), bytes([b])))
    return bytes(out)


_op = st.tuples(
    st.integers(0, 5),
    st.integers(0, 2**20),
    st.integers(1, 64),
    st.binary(min_size=1, max_size=8) | st.lists(st.sampled_from(list(DELIMITERS + DIGITS)), min_size=1,
                                                  max_size=8).map(bytes),
)  # fmt: skip


def mutated(samples: dict[str, bytes]) -> st.SearchStrategy[bytes]:
    """A sample with up to six mutations, or random bytes, or a bare prefix of a sample."""
    names = sorted(samples)
    return st.one_of(
        st.builds(lambda name, ops: _apply(samples[name], ops), st.sampled_from(names), st.lists(_op, max_size=6)),
        st.builds(lambda name, n: samples[name][:n], st.sampled_from(names), st.integers(0, 400)),
        st.binary(max_size=300),
        st.builds(lambda prefix, tail: prefix + tail, st.sampled_from([b"ISA*", b"ST*835*", b"ISA", b"ST"]),
                  st.binary(max_size=200)),
    )  # fmt: skip
