"""The log store: blocks round-trip, checkpoints travel with lines, retention drops
whole segments by age and by size."""

from __future__ import annotations

from pathlib import Path

from fastmango.agent.logs import search
from fastmango.agent.logs.index import LogIndex, decode_block, encode_block
from fastmango.agent.logs.query import parse_query


def test_block_round_trip() -> None:
    texts = ["héllo", "multi\nline", "", "x" * 5000]
    blob = encode_block([1.5, 2.0, 3.0, 4.0], bytes([3, 6, 0, 7]), [1, 2, 1, 65535], texts)
    b = decode_block(10, blob)
    assert (b.first_id, list(b.ts), b.levels, list(b.sources), b.texts) == (
        10,
        [1.5, 2.0, 3.0, 4.0],
        bytes([3, 6, 0, 7]),
        [1, 2, 1, 65535],
        texts,
    )


def test_blocks_written_by_zlib_before_still_read() -> None:
    import zlib

    from fastmango.agent.logs import index

    zstd = encode_block([1.0], bytes([3]), [1], ["older line"])
    raw = index._decompress(zstd)
    assert zstd[:4] == index._ZSTD_MAGIC
    assert decode_block(1, zlib.compress(raw, 1)).texts == ["older line"]


def test_checkpoints_commit_with_lines(tmp_path: Path) -> None:
    ix = LogIndex(tmp_path / "logs.db")
    ix.open()
    sid = ix.source_id("a.log")
    ix.ingest(["one", "two"], [sid, sid], [1.0, 2.0], {"fp1": ("a.log", 8)})
    ix.close()
    again = LogIndex(tmp_path / "logs.db")
    again.open()
    assert again.checkpoints() == {"fp1": ("a.log", 8)}
    assert again.next_id == 3 and again.source_id("a.log") == sid
    again.close()


def _fill(ix: LogIndex, batches: int, per: int, t0: float) -> None:
    sid = ix.source_id("app.log")
    for b in range(batches):
        texts = [
            f"2024-01-02T10:00:00Z INFO batch {b} line {i} " + "payload " * 20 for i in range(per)
        ]
        ix.ingest(texts, [sid] * per, [t0 + b] * per)


def test_retention_by_age(tmp_path: Path) -> None:
    now = [1_000_000.0]
    ix = LogIndex(tmp_path / "logs.db", max_age=3600, segment_lines=1000, clock=lambda: now[0])
    ix.open()
    _fill(ix, 3, 1000, 0.0)  # three segments of 1000 lines each
    assert len(ix.segments()) == 3
    # the lines' own times (2024-01-02) are now far older than an hour
    now[0] = 2_000_000_000.0
    dropped = ix.enforce_retention()
    assert dropped == 2 and len(ix.segments()) == 1  # the newest always stays
    plan = search.Plan.of(parse_query("batch"))
    assert search.count(ix, plan) == (1000, True)
    ix.close()


def test_retention_by_size(tmp_path: Path) -> None:
    now = [100.0]
    ix = LogIndex(tmp_path / "logs.db", max_bytes=150_000, segment_lines=1000, clock=lambda: now[0])
    ix.open()
    _fill(ix, 6, 1000, 90.0)
    before = ix._data_bytes()
    assert before > 150_000
    dropped = ix.enforce_retention()
    assert dropped >= 1
    assert ix._data_bytes() <= 150_000 or len(ix.segments()) == 1
    newest = [
        line.text for line, _ in zip(search.lines(ix, search.Plan.of(None)), range(1), strict=False)
    ]
    assert "batch 5 line 999" in newest[0]
    ix.close()


def test_repeated_counts_only_count_new_ids(tmp_path: Path) -> None:
    ix = LogIndex(tmp_path / "logs.db")
    ix.open()
    sid = ix.source_id("a.log")
    ix.ingest(["error one", "fine", "error two"], [sid] * 3, [1.0] * 3)
    plan = search.Plan.of(parse_query("error"))
    assert search.count(ix, plan) == (2, True)
    assert list(ix.counts.values()) == [(3, 2)]
    ix.ingest(["error three", "ok"], [sid] * 2, [2.0] * 2)
    assert search.count(ix, plan) == (3, True)
    assert list(ix.counts.values()) == [(5, 3)]
    ix.close()


def test_word_counts_from_the_vocabulary_agree_with_matching(tmp_path: Path) -> None:
    """A one-word count over whole segments reads the index's vocabulary; it must agree
    with counting the matches, across segments, after a purge and after retention."""
    ix = LogIndex(tmp_path / "logs.db", segment_lines=4)
    ix.open()
    sid = ix.source_id("a.log")
    texts = [f"2024-01-02 10:11:{i:02d} ERROR app.db: Timeout {i}" for i in range(6)]
    texts += ["timeout again", "all fine", "TIMEOUT secret-42", "nothing"]
    for k in range(0, len(texts), 2):
        ix.ingest(texts[k : k + 2], [sid] * 2, [None, None])
    assert len(ix.segments()) == 3

    def both(word: str) -> tuple[int, int]:
        ix.counts.clear()
        plan = search.Plan.of(parse_query(word))
        fast = search.count(ix, plan)[0]
        slow = sum(ix.fts_count(seg, plan.expr or "", lo, hi) for seg, lo, hi in ix.segments())
        return fast, slow

    assert both("timeout") == (8, 8)
    assert both("error") == (6, 6)  # the level column counts too, as MATCH does
    assert both("absent") == (0, 0)
    assert ix.purge("secret-42") == (1, 10)
    assert both("timeout") == (7, 7)
    ix.enforce_retention()  # nothing too old or big: all stay
    ix.max_bytes = 0
    ix.enforce_retention()  # only the newest segment stays
    assert len(ix.segments()) == 1
    assert both("timeout") == (0, 0)  # the one left was purged
    assert both("nothing") == (1, 1)
    ix.close()


def test_merging_when_idle_leaves_one_btree_and_the_same_answers(tmp_path: Path) -> None:
    ix = LogIndex(tmp_path / "logs.db")
    ix.open()
    sid = ix.source_id("a.log")
    for b in range(30):  # each batch commits a b-tree of its own
        ix.ingest([f"batch {b} line {i} {'error' if i % 3 else 'ok'}" for i in range(50)],
                  [sid] * 50, [float(b)] * 50)  # fmt: skip
    plan = search.Plan.of(parse_query("error"))
    ix.counts.clear()
    before = search.count(ix, plan)
    assert ix.unmerged == {1}
    steps = 0
    while ix.merge_step(pages=8):
        steps += 1
        assert steps < 1000
    assert steps >= 1 and ix.unmerged == set()
    ix.counts.clear()
    assert search.count(ix, plan) == before == (30 * 33, True)
    ix.unmerged.add(1)  # merged already: one step finds nothing to do
    assert ix.merge_step() is False and ix.unmerged == set()
    ix.close()
