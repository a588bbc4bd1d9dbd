"""Stage reporting for long work: terminal bars here, a Streamlit bar in the app.

The loader calls ``with progress.stage(name, total) as advance: ... advance(n)``;
a subclass decides how to show it. Each stage's wall time, CPU time and the
process's peak resident memory so far are recorded in :attr:`Progress.records`.
"""
from __future__ import annotations

import resource
import sys
import time
from contextlib import contextmanager


def peak_rss_mb():
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds():
    """CPU time (user + system) of this process and its finished children.

    On a shared machine wall time moves with the neighbours' load; CPU time
    much less, so growth exponents are fitted on it too.
    """
    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                  resource.getrusage(resource.RUSAGE_CHILDREN)))


class Progress:
    """Silent reporter: records stage times, shows nothing."""

    def __init__(self):
        self.records = []  # (stage, model, seconds, cpu_seconds, peak_rss_mb)

    @contextmanager
    def stage(self, name, total=None, model=None):
        self.start(name, total, model)
        t0, c0 = time.perf_counter(), cpu_seconds()
        try:
            yield self.advance
        except BaseException:
            self.fail(name, model)
            raise
        seconds = time.perf_counter() - t0
        self.records.append((name, model, seconds, cpu_seconds() - c0, peak_rss_mb()))
        self.end(name, model, seconds)

    def start(self, name, total, model):
        pass

    def advance(self, n=1):
        pass

    def end(self, name, model, seconds):
        pass

    def fail(self, name, model):
        pass


class TerminalProgress(Progress):
    """A tqdm bar per stage, closed with its wall time."""

    def __init__(self, file=None):
        super().__init__()
        self.file = file or sys.stderr
        self.bar = None

    def start(self, name, total, model):
        from tqdm import tqdm

        label = f"{model}: {name}" if model else name
        self.bar = tqdm(total=total, desc=label, file=self.file, leave=True,
                        dynamic_ncols=True, bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}]")

    def advance(self, n=1):
        if self.bar is not None:
            self.bar.update(n)

    def end(self, name, model, seconds):
        if self.bar is not None:
            if self.bar.total is not None:
                self.bar.n = self.bar.total
            self.bar.set_postfix_str(f"{seconds:.1f}s, peak {peak_rss_mb():.0f} MiB")
            self.bar.close()
            self.bar = None

    def fail(self, name, model):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
