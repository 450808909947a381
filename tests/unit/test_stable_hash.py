"""One stable hash of ids: its values are pinned, because buckets, the customer split and
the pricing experiment's arms are decided by them and must never move by themselves."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from features.buckets import BUCKET_HASH_KEY, bucket_of
from features.stable_hash import stable_hash, unit_interval
from features.training import customer_split_draw
from models.ab import arm_position, assign_arms

IDS = ["6571c0ffee0000000000000a", "6571c0ffee0000000000000b", "6571c0ffee0000000000000c",
       "user-42"]


def test_the_assignments_it_decides_are_pinned() -> None:
    assert bucket_of(np.asarray(IDS, dtype=object), 10).tolist() == [7, 3, 7, 2]
    assert customer_split_draw(pd.Series(IDS), 7).tolist() == pytest.approx(
        [0.8699973321273716, 0.5037009801992551, 0.8961363588677259, 0.12648915425867202],
        abs=0)
    assert assign_arms(IDS, "dynamic-pricing-v1", 0.5).tolist() == [
        "treatment", "treatment", "control", "control"]
    assert arm_position(IDS[0], "dynamic-pricing-v1") == 0.05782765733764538


def test_sha256_scheme_is_the_first_eight_bytes_of_the_salted_digest() -> None:
    expected = [int.from_bytes(hashlib.sha256(f"exp:{i}".encode()).digest()[:8], "big")
                for i in IDS]
    assert stable_hash(IDS, "exp", scheme="sha256").tolist() == expected


def test_siphash_scheme_matches_pandas_whatever_the_container() -> None:
    expected = pd.util.hash_pandas_object(pd.Series(IDS), index=False,
                                          hash_key=BUCKET_HASH_KEY).to_numpy()
    for ids in (IDS, tuple(IDS), np.asarray(IDS, dtype=object), pd.Series(IDS, dtype=str)):
        assert stable_hash(ids, BUCKET_HASH_KEY).tolist() == expected.tolist()


def test_the_salt_changes_every_value_and_a_bad_salt_is_refused() -> None:
    other = "bbx-buckets-v2.."
    assert not np.any(stable_hash(IDS, BUCKET_HASH_KEY) == stable_hash(IDS, other))
    with pytest.raises(ValueError, match="16 ASCII characters"):
        stable_hash(IDS, "short")
    with pytest.raises(ValueError, match="unknown hash scheme"):
        stable_hash(IDS, BUCKET_HASH_KEY, scheme="md5")  # type: ignore[arg-type]


def test_unit_interval_is_uniform_on_zero_one() -> None:
    draws = unit_interval(stable_hash([str(i) for i in range(20_000)], BUCKET_HASH_KEY))
    assert draws.min() >= 0.0 and draws.max() < 1.0
    assert abs(draws.mean() - 0.5) < 0.01
    assert unit_interval(np.array([2**64 - 1], dtype=np.uint64))[0] < 1.0


def test_no_other_module_hashes_ids_its_own_way() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    own_way = ("hash_array(", "hash_pandas_object(", "from_bytes(hashlib")
    offenders = [
        str(path.relative_to(root))
        for package in ("bbx", "features", "models", "tasks", "flows", "simulator")
        for path in (root / package).rglob("*.py")
        if path.name != "stable_hash.py" and any(s in path.read_text() for s in own_way)
    ]
    assert offenders == []
