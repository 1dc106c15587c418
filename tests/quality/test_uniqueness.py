"""Exact ID uniqueness in bounded memory: hashing, bucketed merge, memory-mapped parts."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pytest

from pipelines.quality.uniqueness import (
    IdHashCollector,
    bucket_bits_for,
    find_duplicates,
    hash_ids,
    load_parts,
    mix64,
    save_part,
    unmix64,
)


def test_mix64_is_a_bijection_with_an_inverse():
    rng = np.random.default_rng(0)
    x = rng.integers(-(2**63), 2**63 - 1, 200_000, dtype=np.int64, endpoint=True)
    x = np.concatenate([x, np.array([0, 1, -1, 2**63 - 1, -(2**63)], np.int64)])
    h = mix64(x.view(np.uint64))
    assert len(np.unique(h)) == len(np.unique(x))
    assert (unmix64(h).view(np.int64) == x).all()


def test_sequential_ids_spread_over_buckets():
    h = mix64(np.arange(1_000_000, dtype=np.uint64))
    counts = np.bincount((h >> np.uint64(60)).astype(np.int64), minlength=16)
    assert counts.min() > 0.9 * 1_000_000 / 16


def test_integral_floats_hash_like_ints_and_text_uses_hash_array():
    ints, kind = hash_ids(pd.Series([1, 2, 3]))
    floats, kind_f = hash_ids(pd.Series([1.0, 2.0, 3.0]))
    assert kind == kind_f == "int" and (ints == floats).all()
    _, kind_frac = hash_ids(pd.Series([1.5]))
    assert kind_frac == "hash"
    text, kind_t = hash_ids(pd.Series(["a", "b", "a"], dtype="str"))
    assert kind_t == "hash" and text[0] == text[2] != text[1]
    again, _ = hash_ids(np.array(["a"], dtype=object))
    assert again[0] == text[0]  # same key in every process: parts from workers are comparable


def _brute(parts):
    values, counts = np.unique(np.concatenate(parts), return_counts=True)
    dup = counts > 1
    return int(dup.sum()), int(counts[dup].sum()), set(values[dup].tolist())


@pytest.mark.parametrize("bits", [0, 1, 3, 8, None])
def test_find_duplicates_matches_brute_force(bits):
    rng = np.random.default_rng(bits or 42)
    parts = []
    for _ in range(4):
        ids = rng.integers(0, 30_000, 5_000)  # plenty of collisions, within and across parts
        c = IdHashCollector()
        c.add(pd.Series(ids))
        parts.append(c.sorted())
    report = find_duplicates(parts, bucket_bits=bits, max_examples=10_000)
    values, rows, dup_hashes = _brute(parts)
    assert (report.values, report.rows) == (values, rows)
    assert set(report.examples) == dup_hashes
    assert report.total == 20_000


def test_no_duplicates_and_empty_parts():
    parts = [mix64(np.arange(i * 10, i * 10 + 10, dtype=np.uint64)) for i in range(3)]
    parts = [np.sort(p) for p in parts] + [np.empty(0, np.uint64)]
    assert find_duplicates(parts, bucket_bits=2).ok
    assert find_duplicates([]).ok


def test_unsorted_part_is_refused():
    with pytest.raises(ValueError, match="not sorted"):
        find_duplicates([np.array([5, 1, 3], np.uint64)])


def test_collector_skips_nulls_and_reports_kind():
    c = IdHashCollector()
    c.add(pd.Series([1.0, np.nan, 3.0]))
    c.add(pd.Series([4, 5]))
    assert len(c.sorted()) == 4 and c.kind == "int"
    assert (np.diff(c.sorted().astype(np.float64)) >= 0).all()
    c.add(pd.Series(["x"], dtype="str"))
    assert c.kind == "hash"


def test_bucket_bits_keep_buckets_small():
    assert bucket_bits_for(1_000) == 0
    assert bucket_bits_for(10_000_000, target=1 << 20) == 4
    assert bucket_bits_for(10**12) == 20


def test_merge_of_memory_mapped_parts_stays_within_one_bucket(tmp_path):
    """4 parts x 250k hashes (8 MB on disk) merged with 64 buckets: peak is ~1/64 of that."""
    rng = np.random.default_rng(7)
    paths = []
    for i in range(4):
        ids = np.arange(i * 250_000, (i + 1) * 250_000, dtype=np.int64)
        if i == 3:
            ids[:3] = [10, 20, 30]  # duplicates of part 0
        c = IdHashCollector()
        c.add(pd.Series(rng.permutation(ids)))
        paths.append(save_part(tmp_path / f"part-{i}.npy", c.sorted()))
    parts = load_parts(paths)
    assert all(isinstance(p, np.memmap) for p in parts)
    tracemalloc.start()
    try:
        report = find_duplicates(parts, bucket_bits=6)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert report.values == 3 and report.rows == 6
    assert sorted(unmix64(np.array(report.examples, np.uint64)).view(np.int64)) == [10, 20, 30]
    whole = 8 * 1_000_000
    assert peak < whole / 64 * 3, peak  # one bucket (+ its sorted copy), not the whole input
