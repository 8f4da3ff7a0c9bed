"""Integer coding of product states.

A product state is the tuple of its leaves' local states. Each leaf gets a
bit field (a mixed-radix digit whose radix is rounded up to a power of two so
that decoding is a shift and a mask, which numpy vectorises well) inside one
of ``K`` int64 words. Fields never straddle words and every word keeps its
sign bit clear, so codes are non-negative and ``-1`` can mark empty hash
slots. ``K == 1`` (up to 63 bits) is the fast path; bigger systems fall back
to several words per state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from processors.csp.semantics.lts import IntArray

WORD_BITS = 63

Words = tuple[IntArray, ...]
"""A batch of states: one int64 array per code word, all the same length."""


@dataclass(frozen=True)
class Field:
    word: int
    shift: int
    mask: int


@dataclass(frozen=True)
class Encoding:
    fields: tuple[Field, ...]
    num_words: int

    @property
    def bits(self) -> int:
        return sum(int(f.mask).bit_length() for f in self.fields)

    def digit(self, words: Words, leaf: int) -> IntArray:
        f = self.fields[leaf]
        out: IntArray = (words[f.word] >> f.shift) & f.mask
        return out

    def encode(self, local_states: tuple[int, ...]) -> Words:
        acc = [0] * self.num_words
        for f, s in zip(self.fields, local_states, strict=True):
            acc[f.word] |= s << f.shift
        return tuple(np.array([a], dtype=np.int64) for a in acc)

    def decode_one(self, words: Words, index: int) -> tuple[int, ...]:
        return tuple((int(words[f.word][index]) >> f.shift) & f.mask for f in self.fields)


def make_encoding(sizes: tuple[int, ...]) -> Encoding:
    """Pack one field of ``ceil(log2(n))`` bits per leaf, first fit into words."""
    fields: list[Field] = []
    used: list[int] = []
    for n in sizes:
        width = max(0, (n - 1).bit_length())
        if width > WORD_BITS:
            raise ValueError(f"leaf with {n} states does not fit a code word")
        word = next((w for w, u in enumerate(used) if u + width <= WORD_BITS), len(used))
        if word == len(used):
            used.append(0)
        fields.append(Field(word, used[word], (1 << width) - 1))
        used[word] += width
    return Encoding(tuple(fields), max(1, len(used)))
