"""Byte-level BPE training, in pure Python, with incremental pair counts.

tiktoken encodes but cannot train, so merges are learned here and handed to tiktoken
(see tokenizer.BPETokenizer).

The algorithm:
1. Pre-split each document with a GPT-4-style regex (digits in groups of at most two,
   which suits small vocabularies) and count the unique chunks once. Merges never
   cross a chunk boundary, so each unique chunk is worked on once, weighted by its count.
2. Every chunk starts as its UTF-8 bytes: the 256 byte values are the base tokens, so
   any text can be encoded and no token is ever unknown.
3. Keep a count for every adjacent pair, an index pair -> chunks that contain it, and
   a heap of candidate pairs. Each merge rewrites only the chunks in its pair's index
   and adjusts only the counts of the pairs around each merged occurrence.

Tie-break, fixed: the highest count wins, then the smallest pair of token ids
(compared as (left, right)). The same corpus and settings always give the same merges
(rustbpe uses the same rule; the tests compare against it). The heap is refreshed
lazily: a popped entry whose count is stale is pushed back with its current count.
"""

from __future__ import annotations

import gc
import heapq
import operator
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Iterable

import regex

# GPT-4's pre-split pattern with numbers in groups of 1-2 digits instead of 1-3.
SPLIT_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""
)


@dataclass(frozen=True)
class BPEResult:
    merges: list[tuple[int, int]]  # merges[i] created token 256 + i
    pattern: str

    @property
    def vocab(self) -> list[bytes]:
        """The bytes of every token id: 0-255 are single bytes, then one per merge."""
        vocab = [bytes([i]) for i in range(256)]
        for a, b in self.merges:
            vocab.append(vocab[a] + vocab[b])
        return vocab


def count_chunks(documents: Iterable[str], pattern: str = SPLIT_PATTERN) -> Counter[str]:
    """How often each pre-split chunk occurs; documents are split separately."""
    compiled = regex.compile(pattern)
    counts: Counter[str] = Counter()
    for doc in documents:
        counts.update(compiled.findall(doc))
    return counts


def train(documents: Iterable[str], num_merges: int, pattern: str = SPLIT_PATTERN) -> BPEResult:
    """Learn up to `num_merges` merges; fewer if the corpus runs out of pairs."""
    return train_counts(count_chunks(documents, pattern), num_merges, pattern)


def train_counts(chunk_counts: Counter[str], num_merges: int, pattern: str = SPLIT_PATTERN) -> BPEResult:
    """Learn merges from chunk counts (`count_chunks`, summed over any number of texts)."""
    # Training allocates millions of small strings and sets but creates no reference
    # cycles, so the cyclic garbage collector's repeated scans of them only cost time.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _train(chunk_counts, num_merges, pattern)
    finally:
        if was_enabled:
            gc.enable()


def _train(chunk_counts: Counter[str], num_merges: int, pattern: str) -> BPEResult:
    # A chunk is held as a str whose characters are token ids (chr(id)): finding a pair
    # is str.find and merging it is str.replace, both at C speed. A pair is a 2-character
    # str, and comparing two of them compares (left, right) ids, as the tie-break needs.
    # Decoding UTF-8 bytes as latin-1 maps each byte b to chr(b): the 256 base tokens.
    words = [chunk.encode("utf-8").decode("latin-1") for chunk in chunk_counts]
    weights = list(chunk_counts.values())

    pair_counts: dict[str, int] = defaultdict(int)
    where: dict[str, set[int]] = defaultdict(set)  # pair -> chunks that contain (or once contained) it
    for i, (word, w) in enumerate(zip(words, weights, strict=True)):
        for pair in map(operator.add, word, word[1:]):
            pair_counts[pair] += w
            where[pair].add(i)
    heap = [(-count, pair) for pair, count in pair_counts.items()]  # min-heap: highest count, then smallest pair
    heapq.heapify(heap)

    merges: list[tuple[int, int]] = []
    while len(merges) < num_merges and heap:
        neg_count, pair = heapq.heappop(heap)
        current = pair_counts.get(pair, 0)
        if -neg_count != current:  # stale entry: put it back with its true count
            if current > 0:
                heapq.heappush(heap, (-current, pair))
            continue
        if current <= 0:
            break
        merges.append((ord(pair[0]), ord(pair[1])))
        grown = _merge_everywhere(pair, chr(255 + len(merges)), words, weights, pair_counts, where)
        for p in grown:  # pairs whose count went up need an up-to-date heap entry
            if pair_counts[p] > 0:
                heapq.heappush(heap, (-pair_counts[p], p))
    return BPEResult(merges, pattern)


def _merge_everywhere(
    pair: str,
    new: str,
    words: list[str],
    weights: list[int],
    pair_counts: dict[str, int],
    where: dict[str, set[int]],
) -> set[str]:
    """Replace `pair` by the token `new` in every chunk that has it, and update the
    counts of the pairs around each occurrence. Returns the pairs whose count went up."""
    a, b = pair
    grown: set[str] = set()
    grow, index = grown.add, where.__getitem__  # bound once: this loop is the trainer's hot path
    for i in where.pop(pair):
        word = words[i]
        pos = word.find(pair)
        if pos < 0:  # the index is lazy: an earlier merge may have taken this chunk's pair
            continue
        w = weights[i]
        last = len(word) - 2
        merged_end = -1  # where the previous occurrence ended
        occurrences = 0
        while pos >= 0:
            if pos:  # the left neighbour now pairs with the new token
                left = new if pos == merged_end else word[pos - 1]
                pair_counts[left + a] -= w
                key = left + new
                pair_counts[key] += w
                index(key).add(i)
                grow(key)
            if pos < last:  # and so does the right one
                right = word[pos + 2]
                pair_counts[b + right] -= w
                key = new + right
                pair_counts[key] += w
                index(key).add(i)
                grow(key)
            occurrences += 1
            merged_end = pos + 2
            pos = word.find(pair, merged_end)
        words[i] = word.replace(pair, new)  # non-overlapping, left to right, like the loop above
        pair_counts[pair] -= w * occurrences
    pair_counts.pop(pair, None)
    return grown
