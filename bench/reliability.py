"""Kill the loader at every stage and check the previous database still serves.

    python -m bench.reliability            # every kill point on a small demo -> docs/RELIABILITY.md

Each kill point runs ``python -m lib load`` in a child process that sends
itself SIGKILL at a chosen moment (a stage starting, the n-th progress step
of a stage, just before publishing, between the build's rename and the link
switch). After each kill: the database link must still point to the same,
byte-identical build; a reader opened before the kill and a new reader must
both answer the Explorer's queries; no ``.partial`` file may be served. A
final complete load must then publish and clear the dead loads' ``.partial``
files.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lib import mapview, store  # noqa: E402
from lib.queries import Explorer  # noqa: E402

DOC = ROOT / "docs" / "RELIABILITY.md"
QUICK_LOAD = ("--k-max", "6", "--map-iters", "60")
# (kill point, what the child does); "stage:NAME@MODEL" = as the stage starts,
# "advance:NAME:N" = at the N-th progress step inside the stage (mid-stage)
KILL_POINTS = [
    ("stage:read descriptors", "reading the first descriptor file"),
    ("advance:PCA:1", "mid-PCA (after the first chunk)"),
    ("advance:k sweep:2", "mid k sweep (after 2 values of k)"),
    ("stage:clustering", "final KMeans"),
    ("stage:neighbours", "neighbour graph"),
    ("advance:2-D map:2", "mid 2-D map (t-SNE iterations)"),
    ("stage:outliers", "outlier scores"),
    ("stage:PCA@{last}", "PCA of the last model (earlier models written)"),
    ("stage:consensus outliers", "consensus outliers"),
    ("advance:thumbnails:1", "mid thumbnails (first batch stored)"),
    ("publish", "just before publish (build complete, not checkpointed)"),
    ("link", "after the rename to .duckdb, before the link switch"),
]


def _child(spec, argv):
    """Run the loader CLI, SIGKILLing this very process at ``spec``."""
    from lib import progress
    from lib.__main__ import main

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    kind, _, rest = spec.partition(":")
    if kind == "publish":
        store.Writer.publish = lambda self, keep=2: die()
    elif kind == "link":
        store.publish = lambda db_path, build_path: die()
    else:
        name, _, count = rest.partition(":")
        name, _, model = name.partition("@")
        cls = progress.TerminalProgress
        start, advance = cls.start, cls.advance
        state = {"in": False, "steps": 0}

        def on_start(self, stage, total, stage_model):
            start(self, stage, total, stage_model)
            state["in"] = stage == name and (not model or stage_model == model)
            if state["in"] and kind == "stage":
                die()

        def on_advance(self, n=1):
            advance(self, n)
            if state["in"]:
                state["steps"] += 1
                if state["steps"] >= int(count):
                    die()

        cls.start, cls.advance = on_start, on_advance
    return main(argv)


def digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def serves(ex):
    """Run one of each query the pages make; return a short description or raise."""
    model = ex.model_names()[0]
    got = [len(ex.similar(model, 0, 5)), len(ex.similar_exact(model, 1, 5)), len(ex.outliers(model, 2)[0]),
           len(ex.clusters(model)), len(mapview.points(ex, model, n=200)), len(ex.cluster_gallery(model, 0, 4)[0]),
           len(ex.thumbnails([0, 1]))]
    if min(got) == 0:
        raise AssertionError(f"empty answer: {got}")
    return ex.summary()["images"]


def killed_load(data, db, spec, loader_args=QUICK_LOAD, timeout=900):
    """Kill a load of ``data`` into ``db`` at ``spec``; check the database before and after.

    Returns
    -------
    dict
        ``killed`` (exit by SIGKILL), ``partial_left``, ``same_build`` (link
        and bytes unchanged), ``old_reader_ok``, ``new_reader_ok``,
        ``served`` (the file name served).
    """
    before = store.resolve(db)
    before_digest = digest(before)
    old = Explorer(db)  # a running app's reader
    partials = set(store.builds_dir(db).glob("*.partial"))
    cmd = [sys.executable, "-m", "bench.reliability", "--child", spec, "--", "load", str(data), "--db", str(db),
           *loader_args]
    r = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=timeout)
    after = store.resolve(db)
    row = {"point": spec, "exit": r.returncode, "killed": r.returncode == -signal.SIGKILL,
           "partial_left": bool(set(store.builds_dir(db).glob("*.partial")) - partials),
           "same_build": after == before and digest(after) == before_digest,
           "served": after.name, "served_is_partial": after.name.endswith(".partial")}
    try:
        row["old_reader_ok"] = serves(old) > 0
    except Exception as e:
        row["old_reader_ok"], row["error"] = False, repr(e)
    finally:
        old.close()
    try:
        new = Explorer(db)
        row["new_reader_ok"] = serves(new) > 0
        new.close()
    except Exception as e:
        row["new_reader_ok"], row["error"] = False, repr(e)
    if not row["killed"]:
        row["error"] = r.stderr[-500:]
    return row


def demo_data(work, vehicles):
    from lib import demo

    data = Path(work) / f"demo-{vehicles}"
    if not (data / "truth.csv").exists():
        demo.generate(data, n_vehicles=vehicles, seed=0)
    return data


def run(work, vehicles=60, points=None, loader_args=QUICK_LOAD):
    """Every kill point against one database; then a clean load. Returns the rows."""
    from lib import pipeline

    data = demo_data(work, vehicles)
    db = Path(work) / "db" / "vehicles.duckdb"
    if store.resolve(db) is None:
        subprocess.run([sys.executable, "-m", "lib", "load", str(data), "--db", str(db), *loader_args],
                       cwd=ROOT, check=True, capture_output=True)
    last = sorted(p.stem for p in (data / "descriptors").iterdir())[-1]
    rows = []
    for spec, what in points or KILL_POINTS:
        t = time.perf_counter()
        row = killed_load(data, db, spec.format(last=last), loader_args)
        row["what"], row["seconds"] = what, time.perf_counter() - t
        print(f"[reliability] {row['point']:28} killed={row['killed']} same_build={row['same_build']} "
              f"readers={row['old_reader_ok']}/{row['new_reader_ok']} partial_left={row['partial_left']}", flush=True)
        rows.append(row)
    leftover = len(list(store.builds_dir(db).glob("*.partial")))
    report = pipeline.load(data, db, pipeline.LoadConfig(ks=tuple(range(2, 7)), map_iters=60,
                                                         map_exaggeration_iters=60))
    rows.append({"point": "none (complete load afterwards)", "what": f"{leftover} .partial files before",
                 "killed": False, "exit": 0,
                 "partial_left": bool(list(store.builds_dir(db).glob("*.partial"))),
                 "same_build": False, "served": Path(report["db"]).name, "served_is_partial": False,
                 "old_reader_ok": True, "new_reader_ok": serves(Explorer(db)) > 0})
    return rows


def markdown(rows):
    def yes(v):
        return "yes" if v else "**no**"

    L = ["| kill point | stage | SIGKILLed | `.partial` left | link + bytes unchanged | reader opened before "
         "answers | new reader answers | served file |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        L.append(f"| `{r['point']}` | {r['what']} | {yes(r['killed']) if r['exit'] else 'no (completed)'} | "
                 f"{'yes' if r['partial_left'] else 'no'} | {yes(r['same_build']) if r['exit'] else 'new build'} | "
                 f"{yes(r['old_reader_ok'])} | {yes(r['new_reader_ok'])} | "
                 f"`{r['served']}`{' **(partial!)**' if r['served_is_partial'] else ''} |")
    return "\n".join(L)


def replace_section(path, name, text):
    """Replace the text between ``<!-- name -->`` and ``<!-- /name -->`` in ``path``."""
    path = Path(path)
    doc = path.read_text()
    pattern = re.compile(rf"(<!-- {name} -->\n).*?(<!-- /{name} -->)", re.S)
    if not pattern.search(doc):
        raise ValueError(f"{path}: no <!-- {name} --> section")
    path.write_text(pattern.sub(lambda m: m.group(1) + text.rstrip() + "\n" + m.group(2), doc))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return _child(argv[1], argv[3:])
    ap = argparse.ArgumentParser(prog="python -m bench.reliability", description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default=str(ROOT / ".bench" / "reliability"))
    ap.add_argument("--vehicles", type=int, default=60)
    ap.add_argument("--doc", default=str(DOC), help="Markdown file whose kill-points section is rewritten")
    args = ap.parse_args(argv)
    rows = run(args.work, args.vehicles)
    table = markdown(rows)
    print(table)
    stamp = (f"Made by `python -m bench.reliability --vehicles {args.vehicles}` on {time.strftime('%Y-%m-%d %H:%M')} "
             f"(demo data, `python -m lib load ... {' '.join(QUICK_LOAD)}`).\n\n")
    replace_section(args.doc, "kill-points", stamp + table)
    ok = all(r["same_build"] and r["old_reader_ok"] and r["new_reader_ok"] and r["killed"] for r in rows[:-1])
    return 0 if ok and rows[-1]["new_reader_ok"] and not rows[-1]["partial_left"] else 1


if __name__ == "__main__":
    sys.exit(main())
