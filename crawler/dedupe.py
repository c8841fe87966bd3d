"""MinHash signatures of article text, for grouping the same story told by several sources."""

from __future__ import annotations

import re

from datasketch import MinHash

from db.stories import NUM_PERM

SHINGLE = 5
_WORD = re.compile(r"\w+")


def shingles(text: str, size: int = SHINGLE) -> set[bytes]:
    words = _WORD.findall(text.lower())
    if len(words) <= size:
        return {" ".join(words).encode()} if words else set()
    return {" ".join(words[i:i + size]).encode() for i in range(len(words) - size + 1)}


# drawing the random permutations costs as much as hashing an article: draw them once
_PERMUTATIONS = MinHash(num_perm=NUM_PERM, seed=1).permutations


def signature(title: str, body: str) -> list[int]:
    minhash = MinHash(num_perm=NUM_PERM, seed=1, permutations=_PERMUTATIONS)
    minhash.update_batch(list(shingles(f"{title}\n{body}")))
    return [int(v) for v in minhash.hashvalues]
