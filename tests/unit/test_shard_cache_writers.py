"""The shard cache under concurrent writers: two runs (two deployments, or two workers on
one shared cache) may rate and store the same shard at once. Each file is written to a
temporary name in the same folder and renamed into place, so a reader sees no file or a
whole one, and the last rename of two identical shards wins without harm."""

from __future__ import annotations

import threading

import pyarrow.parquet as pq
from helpers import tiny_examples, uniform_ratings

from selectit.rating.shards import ShardCache


def test_writers_of_one_shard_at_once_leave_one_whole_shard_and_readers_never_see_a_part(tmp_path):
    examples = tiny_examples()
    ratings = uniform_ratings(examples)
    unfit = {examples[0].id: "too long"}
    caches = [ShardCache(tmp_path, "tiny", {"model": "m"}) for _ in range(4)]  # one per writer, as in separate runs
    errors: list[BaseException] = []
    writing = threading.Event()

    def write(cache: ShardCache) -> None:
        try:
            for _ in range(10):
                cache.write(examples, ratings, unfit)
        except BaseException as exc:  # noqa: BLE001 (reported by the assertion below)
            errors.append(exc)

    def read() -> None:
        reader = ShardCache(tmp_path, "tiny", {"model": "m"})
        try:
            while writing.is_set():
                done = reader.done_ids()
                # Nothing or the whole shard: a half-written file would fail to parse or hold fewer ids.
                assert done in (set(), {e.id for e in examples})
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    writing.set()
    reader = threading.Thread(target=read)
    reader.start()
    writers = [threading.Thread(target=write, args=(cache,)) for cache in caches]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    writing.clear()
    reader.join()

    assert errors == []
    folder = caches[0].folder
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [f"{caches[0].shard_id(examples)}.parquet", f"{caches[0].shard_id(examples)}.rejects.json", "key.json"]
    )  # no temporary file left behind
    assert pq.read_table(next(folder.glob("*.parquet"))).equals(ratings)
