"""Item uids as a column: the 128-bit values in two uint64 arrays, formatted as UUID strings only when read.

A million-item dataset held as a list of strings and a dict from string to index costs about 250 MB and a
second of formatting at start-up; as columns it is 16 MB, the strings are made for the items a request
touches, and a uid is found by binary search on its high 64 bits (random, so they practically never
collide; the full string is compared to be sure). The values are exactly those ``random.Random.getrandbits
(128)`` would give one by one: the Mersenne Twister's state is handed to numpy, which draws the same words.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np

_VERSION_MASK, _VERSION = np.uint64(0xF000), np.uint64(0x4000)  # in the high word: the 13th hex digit is 4
_VARIANT_MASK, _VARIANT = np.uint64(0xC000 << 48), np.uint64(0x8000 << 48)  # in the low word


def uuid4_text(bits: int) -> str:
    """``str(uuid.UUID(int=bits, version=4))`` without building a UUID object (3x faster: world start-up)."""
    bits = (bits & ~(0xC000 << 48)) | (0x8000 << 48)
    bits = (bits & ~(0xF000 << 64)) | (4 << 76)
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def draw_bits(rng: random.Random, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` draws of ``rng.getrandbits(128)`` as (high, low) uint64 arrays, leaving ``rng`` where n scalar
    draws would have."""
    _, state, _ = rng.getstate()
    bg = np.random.MT19937()
    bg.state = {"bit_generator": "MT19937", "state": {"key": np.array(state[:624], dtype=np.uint32), "pos": state[624]}}
    words = bg.random_raw(4 * n).reshape(n, 4)  # uint64 words of 32 bits; getrandbits fills low words first
    low = words[:, 0] | (words[:, 1] << np.uint64(32))
    high = words[:, 2] | (words[:, 3] << np.uint64(32))
    after = bg.state["state"]
    rng.setstate((3, (*(int(x) for x in after["key"]), int(after["pos"])), None))
    return high, low


class UidColumn:
    """A read-only sequence of uid strings backed by (high, low) arrays."""

    def __init__(self, high: np.ndarray, low: np.ndarray) -> None:
        # version and variant set once here, so ``high`` is exactly the text's first 16 hex digits
        self.high = (high & ~_VERSION_MASK) | _VERSION
        self.low = (low & ~_VARIANT_MASK) | _VARIANT

    def __len__(self) -> int:
        return len(self.high)

    def __getitem__(self, i: int) -> str:
        return uuid4_text((int(self.high[i]) << 64) | int(self.low[i]))

    def __iter__(self) -> Iterator[str]:
        return (self[i] for i in range(len(self)))


class UidIndex:
    """uid -> index for a :class:`UidColumn`, by binary search on the high 64 bits (dict-like ``get``/``in``)."""

    def __init__(self, column: UidColumn) -> None:
        self.column = column
        self.order = np.argsort(column.high, kind="stable")
        self.sorted_high = column.high[self.order]

    def get(self, uid: object, default: int | None = None) -> int | None:
        if not isinstance(uid, str) or len(uid) != 36:
            return default
        try:
            high = int(uid[:8] + uid[9:13] + uid[14:18], 16)
        except ValueError:
            return default
        pos = int(np.searchsorted(self.sorted_high, np.uint64(high), side="left"))
        while pos < len(self.order) and int(self.sorted_high[pos]) == high:
            index = int(self.order[pos])
            if self.column[index] == uid:
                return index
            pos += 1
        return default

    def __contains__(self, uid: object) -> bool:
        return self.get(uid) is not None

    def __len__(self) -> int:
        return len(self.column)
