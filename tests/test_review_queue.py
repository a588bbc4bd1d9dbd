"""The review queue on the realistic build (near-duplicate groups, broken rows): progress, next, bulk, undo."""
import pytest

from lib import reviews
from lib.queries import Explorer
from lib.review_queue import Queue


@pytest.fixture()
def queue(realistic_db, tmp_path):
    ex = Explorer(realistic_db[0])
    rev = reviews.Reviews(tmp_path / "r.sqlite")
    yield Queue(ex, rev, "consensus")
    ex.close()


def test_entries_are_the_pages_without_paging(queue):
    first, total = queue.page(1, 24)
    second, _ = queue.page(2, 24)
    every = queue.entries()
    assert len(every) == total and total > 48
    assert list(every["image_id"][:48]) == list(first["image_id"]) + list(second["image_id"])
    ranks = list(every["rank"])
    some = queue.entries((ranks[5], ranks[9]))
    assert list(some["rank"]) == ranks[5:10]
    assert queue.page_of(ranks[0], 24) == 1 and queue.page_of(ranks[24], 24) == 2 and queue.page_of(ranks[23], 24) == 1


def test_progress_counts_verdicts_on_the_flagged_entries_only(queue):
    flagged = queue.entries()
    p = queue.progress()
    assert p.flagged == len(flagged) and p.reviewed == 0
    assert p.text() == f"0 of {len(flagged):,} flagged entries reviewed; 0 outlier, 0 fine, 0 unsure"
    queue.give(flagged.iloc[:3], "fine")
    queue.give(flagged.iloc[3:4], "outlier")
    unflagged = Queue(queue.ex, queue.rev, "consensus", flagged_only=False).entries().iloc[-2:]
    queue.give(unflagged, "unsure")  # the bottom of the ranking is not in the flagged list
    p = queue.progress()
    assert (p.reviewed, p.counts) == (4, {"outlier": 1, "fine": 3, "unsure": 0})
    assert p.text().startswith(f"4 of {len(flagged):,} flagged entries reviewed; 1 outlier, 3 fine")


def test_next_unreviewed_skips_verdicts_and_wraps_round(queue):
    every = queue.entries()
    ranks = list(every["rank"])
    queue.give(every.iloc[1:4], "fine")
    nxt = queue.next_unreviewed(ranks[0])
    assert nxt["rank"] == ranks[4] and nxt["image_id"] == every["image_id"].iloc[4]
    queue.give(every.iloc[4:], "fine")  # only the first is left: after the last, back to the top
    assert queue.next_unreviewed(ranks[2])["rank"] == ranks[0]
    queue.give(every.iloc[:1], "outlier")
    assert queue.next_unreviewed(ranks[0]) is None


def test_a_bulk_verdict_keeps_verdicts_given_by_hand_and_undoes(queue):
    every = queue.entries()
    path, image_id = every["path"].iloc[2], int(every["image_id"].iloc[2])
    queue.rev.set_verdict(path, "outlier", "two cars", image_id=image_id)
    undo = queue.give(every.iloc[:10], "fine", build="b1")
    assert len(undo) == 9 and path not in {u[0] for u in undo}
    saved = queue.rev.verdicts(every["path"].iloc[:10])
    assert saved[path] == ("outlier", "two cars")
    assert sum(v == ("fine", "") for v in saved.values()) == 9
    # overwriting is asked for: the hand-given verdict changes, its note stays, and undo brings it back
    over = queue.give(every.iloc[:10], "unsure", skip_reviewed=False)
    assert len(over) == 10 and queue.rev.verdicts([path])[path] == ("unsure", "two cars")
    queue.rev.restore(over)
    assert queue.rev.verdicts(every["path"].iloc[:10]) == saved
    queue.rev.restore(undo)
    assert queue.rev.verdicts(every["path"].iloc[:10]) == {path: ("outlier", "two cars")}
    # the history keeps every step
    assert queue.rev._read("SELECT count(*) FROM verdict_history")[0][0] == 1 + 9 + 10 + 10 + 9


def test_unreviewed_only_shrinks_the_queue_as_verdicts_land(queue):
    todo = Queue(queue.ex, queue.rev, "consensus", unreviewed_only=True)
    before = len(todo.entries())
    todo.give(todo.entries().iloc[:5], "fine")
    assert len(todo.entries()) == before - 5
    assert todo.page(1, 24)[1] == before - 5


def test_a_group_is_one_entry_and_its_representative_carries_the_verdict(queue, realistic_db):
    groups = queue.ex.df("SELECT group_id, image_id FROM duplicate_groups WHERE NOT is_representative")
    every = Queue(queue.ex, queue.rev, "consensus", flagged_only=False).entries(limit=None)
    assert not set(every["image_id"]) & set(groups["image_id"])
    assert len(every) == queue.ex.n_images - len(groups)
