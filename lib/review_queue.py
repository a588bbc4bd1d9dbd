"""The review queue: a filtered outlier ranking, what is left of it, and verdicts given to many at once.

A reviewer works through one ranking (a model's or the consensus), usually its
flagged top 1%, narrowed by cause and cluster. :class:`Queue` holds those
filters and answers what the Outliers page needs beyond one page of entries:
how much of the flagged list is reviewed (:meth:`Queue.progress`), where the
next unreviewed entry is (:meth:`Queue.next_unreviewed`), and the entries a
bulk verdict covers (:meth:`Queue.entries`). Verdicts are stored by
:class:`lib.reviews.Reviews`; an entry is an image or a near-duplicate group,
whose representative carries the verdict.
"""
from __future__ import annotations

from dataclasses import dataclass

from .reviews import VERDICTS

BULK_LIMIT = 10_000  # one bulk verdict covers at most this many entries


@dataclass
class Progress:
    """How much of a ranking's flagged entries has a verdict.

    Attributes
    ----------
    flagged : int
        Flagged entries of the ranking (its top 1%).
    counts : dict
        ``{verdict: entries}`` among them, for every verdict.
    """

    flagged: int
    counts: dict

    @property
    def reviewed(self):
        return sum(self.counts.values())

    def text(self):
        """``"312 of 4,163 flagged entries reviewed; 41 outlier, 260 fine, 11 unsure"``."""
        parts = ", ".join(f"{self.counts[v]:,} {v}" for v in VERDICTS)
        return f"{self.reviewed:,} of {self.flagged:,} flagged entries reviewed; {parts}"


@dataclass
class Queue:
    """One filtered ranking to review.

    Parameters
    ----------
    ex : lib.queries.Explorer
    rev : lib.reviews.Reviews
    model : str
        Whose ranking: a model or ``'consensus'``.
    cluster_model, cluster, cause :
        As in :meth:`lib.queries.Explorer.outliers`.
    flagged_only : bool
        Only the ranking's flagged top 1%.
    unreviewed_only : bool
        Leave out entries that already have a verdict.
    region : tuple or None
        ``(model, lib.mapview.Bounds)``: only images inside that rectangle of
        that model's map (a region selected on the Clusters page).
    """

    ex: object
    rev: object
    model: str
    cluster_model: str | None = None
    cluster: int | None = None
    cause: str | None = None
    flagged_only: bool = True
    unreviewed_only: bool = False
    region: tuple | None = None

    def _filters(self, unreviewed=None):
        unreviewed = self.unreviewed_only if unreviewed is None else unreviewed
        return dict(cluster_model=self.cluster_model, cluster=self.cluster, cause=self.cause,
                    exclude_paths=self.rev.reviewed_paths() if unreviewed else None,
                    flagged_only=self.flagged_only, region=self.region)

    def page(self, page, per_page):
        """One page of entries and the number of entries: :meth:`lib.queries.Explorer.outliers`."""
        return self.ex.outliers(self.model, page, per_page, **self._filters())

    def entries(self, ranks=(None, None), limit=BULK_LIMIT):
        """The entries shown with these filters, optionally only ranks ``ranks[0]`` to ``ranks[1]``."""
        return self.ex.outlier_entries(self.model, ranks=ranks, limit=limit, **self._filters())

    def page_of(self, rank, per_page):
        """The page (from 1) on which the entry of ``rank`` is listed with these filters."""
        before = self.ex.outlier_entries(self.model, ranks=(None, int(rank) - 1), **self._filters())
        return len(before) // per_page + 1

    def next_unreviewed(self, after_rank=0):
        """The first entry without a verdict ranked after ``after_rank`` (wrapping to the top), or None.

        Returns
        -------
        dict or None
            ``rank, image_id, path`` of the entry.
        """
        for ranks in ((int(after_rank) + 1, None), (None, int(after_rank))):
            df = self.ex.outlier_entries(self.model, ranks=ranks, limit=1, **self._filters(unreviewed=True))
            if len(df):
                return df.iloc[0].to_dict()
        return None

    def progress(self):
        """:class:`Progress` over the ranking's flagged entries (whatever the other filters)."""
        flagged = self.ex.outlier_entries(self.model, flagged_only=True)
        saved = self.rev.verdicts(flagged["path"])
        counts = {v: 0 for v in VERDICTS}
        for verdict, _ in saved.values():
            counts[verdict] += 1
        return Progress(len(flagged), counts)

    def give(self, entries, verdict, build=None, skip_reviewed=True):
        """One verdict to every entry of ``entries`` (a frame from :meth:`entries` or :meth:`page`).

        Returns
        -------
        list
            What undoes it: :meth:`lib.reviews.Reviews.restore`.
        """
        return self.rev.set_verdicts(zip(entries["path"], entries["image_id"]), verdict, build, skip_reviewed)
