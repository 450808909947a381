"""The one stable hash of ids: the same id and salt give the same number on every
machine, process and run, with nothing stored (pure).

What it decides must never move by itself: a customer's bucket, whether they are a
training, validation or test customer, their arm of a pricing experiment. Python's
`hash()` is salted per process, so it cannot serve.

Two schemes, because assignments already published must keep their values:
- "siphash" (default): SipHash-2-4 keyed by a 16-character salt, vectorised by pandas;
  buckets and the customer split use it.
- "sha256": the first 8 bytes (big-endian) of sha256("<salt>:<id>"); the pricing
  experiment's arms use it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Literal

import numpy as np
import pandas as pd

SIPHASH_SALT_LENGTH = 16  # SipHash's key is 128 bits


def stable_hash(
    ids: Iterable[object], salt: str, *, scheme: Literal["siphash", "sha256"] = "siphash"
) -> np.ndarray:
    """A uint64 per id (text), a function of (id, salt, scheme) only."""
    values = np.asarray(ids if isinstance(ids, np.ndarray | pd.Series) else list(ids),
                        dtype=object)
    if scheme == "siphash":
        if len(salt) != SIPHASH_SALT_LENGTH or not salt.isascii():
            raise ValueError(f"a siphash salt is {SIPHASH_SALT_LENGTH} ASCII characters, "
                             f"got {salt!r}")
        return pd.util.hash_array(values, hash_key=salt, categorize=False)
    if scheme == "sha256":
        return np.fromiter(
            (int.from_bytes(hashlib.sha256(f"{salt}:{value}".encode()).digest()[:8], "big")
             for value in values),
            dtype=np.uint64, count=len(values))
    raise ValueError(f"unknown hash scheme {scheme!r}")


def unit_interval(hashed: np.ndarray) -> np.ndarray:
    """Stable hashes as uniform draws in [0, 1): their top 53 bits, exactly representable."""
    return (np.asarray(hashed, dtype=np.uint64) >> np.uint64(11)).astype(np.float64) \
        / float(1 << 53)
