"""Widths of unsigned indices: the one rule every core, decoder and stage sizes its fields by."""

from __future__ import annotations


def index_bits(n: int) -> int:
    """Bits of an unsigned index ``0..n-1``; at least 1, so no port or field is zero bits wide."""
    return max(1, (n - 1).bit_length())
