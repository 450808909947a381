"""Deterministic encoding helpers: seeded RNG streams, ObjectIds, BSON dates."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
from bson import ObjectId

SECONDS_PER_DAY = 86_400
BCRYPT_ALPHABET = np.frombuffer(
    b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", dtype=np.uint8
)

# Stream keys: each part of the simulation draws from its own stream so that
# changing one part (or the batch size) never shifts another part's numbers.
STREAM_POPULATION = 1
STREAM_TIMELINE = 2
STREAM_USAGE = 3
STREAM_LOGINS = 4
STREAM_IDS = 5
STREAM_DOCUMENTS = 6
STREAM_DIRT = 7
STREAM_PRICE_RESPONSE = 8


def rng_for(seed: int, stream: int, part: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, stream, part])


def epoch_seconds(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())


def object_ids(rng: np.random.Generator, created_seconds: np.ndarray) -> list[ObjectId]:
    """ObjectIds whose timestamp prefix is the creation time and whose tail is seeded."""
    n = len(created_seconds)
    raw = np.empty((n, 12), dtype=np.uint8)
    raw[:, :4] = np.asarray(created_seconds, dtype=">u4").view(np.uint8).reshape(n, 4)
    raw[:, 4:] = rng.integers(0, 256, size=(n, 8), dtype=np.uint8)
    blob = raw.tobytes()
    return [ObjectId(blob[i : i + 12]) for i in range(0, 12 * n, 12)]


def to_datetimes(seconds: np.ndarray | Sequence[int]) -> list[dt.datetime]:
    """Whole-second UTC datetimes (BSON dates round-trip them exactly)."""
    values = np.asarray(seconds, dtype=np.int64).tolist()
    return [dt.datetime.fromtimestamp(s, dt.UTC) for s in values]


def fake_bcrypt_hashes(rng: np.random.Generator, n: int) -> list[str]:
    """Strings shaped like the app's bcrypt password hashes (never real ones)."""
    tails = BCRYPT_ALPHABET[rng.integers(0, len(BCRYPT_ALPHABET), size=(n, 53))]
    return ["$2a$10$" + row.tobytes().decode() for row in tails]


def hex_tokens(rng: np.random.Generator, n: int, length: int) -> list[str]:
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    rows = digits[rng.integers(0, 16, size=(n, length))]
    return [row.tobytes().decode() for row in rows]
