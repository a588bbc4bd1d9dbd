"""Outliers: review the ranking page by page, one entry at a time from the keyboard or many at once.

Every filter and the page live in the URL; the queue's logic is :mod:`lib.review_queue`.
"""
import streamlit as st

import ui
from lib import export, mapview, outliers, reviews
from lib.review_queue import BULK_LIMIT, Queue
from lib.queries import int_param

PER_PAGE = 24
COLUMNS = 4  # room for the verdict buttons under each image
ANY, ALL = "any", "all"  # not None: a selectbox shows None as an empty choice
ex = ui.explorer()
rev = ui.review_store()
model = ui.pick_model(ex, extra=("consensus",), default="consensus")
st.title(f"Outliers: {model}")
st.caption("Rank 1 = most unusual. Every detector's score (distance to the nearest images, local outlier factor, "
           "distance to the cluster centre, IsolationForest, distance from the vehicle's other photos) is turned "
           "into how rare such a value is; detectors that measure the same thing count once, and the consensus "
           "lets one trustworthy model's extreme find win (models whose neighbours do not find the same vehicle "
           "better than chance weigh nothing). '1 in N' is that rarity; under each image, why. Near-identical "
           "frames of one pass are one entry, with their count. A verdict or note is saved as soon as you set it; "
           "keys O, F, U give one to the highlighted entry and move on.")

# filters: a widget missing from the session (a new session, or back from another page) starts from the
# URL; then the widget owns the value and the URL is written back from it
q = st.query_params
state = st.session_state
causes = (ex.model_names() + list(outliers.SCORES)) if model == "consensus" else list(outliers.SCORES)
fresh = "o_page" not in state
if state.get("o_model") != model:  # another ranking starts at its first page
    state["o_model"] = model
    if not fresh:
        state["o_page"] = 1
if fresh:
    state["o_unreviewed"] = q.get("unreviewed") == "1"
    state["o_flagged"] = q.get("flagged") != "0"  # the flagged images unless a link asks for all
    state["o_cause"] = ui.url_choice("cause", causes, ANY, "cause")
if state["o_cause"] not in [ANY] + causes:  # the ranking changed to one without this cause
    state["o_cause"] = ANY
if "o_cmodel" not in state:
    state["o_cmodel"] = ui.url_choice("cmodel", ex.model_names(), ex.model_names()[0], "cluster model")


def first_page():
    state["o_page"] = 1


f1, f2, f3, f4 = st.columns(4)
f1.toggle("Flagged only", key="o_flagged", on_change=first_page,
          help="only the top 1% of this ranking (an entry is an image or a group of near-identical frames)")
f1.toggle("Unreviewed only", key="o_unreviewed", on_change=first_page)
f2.selectbox("Flagged by", [ANY] + causes, key="o_cause", on_change=first_page,
             format_func=lambda c: ("any detector or model" if c == ANY
                                    else f"{c}: {outliers.CAUSES[c]}" if c in outliers.CAUSES else c),
             help="the detector (or, for consensus, the model) that put the image in its top 1%")
if model == "consensus":
    f3.selectbox("Clusters of", ex.model_names(), key="o_cmodel", on_change=first_page)
    cmodel = state["o_cmodel"]
else:
    cmodel = model
cl = ex.clusters(cmodel)
names, _ = reviews.current_names(ex, rev, cmodel)
cluster_ids = [int(c) for c in cl["cluster"]]
if fresh or "o_cluster" not in state:
    state["o_cluster"] = ui.url_choice("cluster", cluster_ids, ALL, "cluster")
elif state.get("o_cluster_of") != cmodel:  # cluster numbers of another model mean other clusters
    state["o_cluster"] = ALL
state["o_cluster_of"] = cmodel
if state["o_cluster"] not in [ALL] + cluster_ids:
    state["o_cluster"] = ALL
labels = dict(zip(cluster_ids, ui.cluster_labels(cl, names)))  # size, colour and name, as on Clusters
f4.selectbox("Cluster", [ALL] + cluster_ids, key="o_cluster", on_change=first_page,
             format_func=lambda c: "all clusters" if c == ALL else labels[c])
cause = None if state["o_cause"] == ANY else state["o_cause"]
cluster = None if state["o_cluster"] == ALL else state["o_cluster"]

# a region of a model's map (from the Clusters page): its images are the set under review
region = None
if q.get("region"):
    bounds = ui.bounds_param("region", "the map region", "listing images from the whole map")
    if bounds is not None and q.get("map") not in ex.model_names():
        st.warning(f"Ignored the map region from the link: map {str(q.get('map'))[:40]!r} is not a model here; "
                   "listing images from the whole map.")
    elif bounds is not None:
        region = (q["map"], bounds)
        r1, r2 = st.columns([4, 1])
        r1.info(f"Only the {mapview.count(ex, q['map'], bounds):,} images in a region of {q['map']}'s map "
                f"([back to the map](/clusters?model={q['map']}&region={bounds.text()})).")
        if r2.button("Whole ranking", help="drop the region"):
            region = None
            first_page()
queue = Queue(ex, rev, model, cmodel, cluster, cause, state["o_flagged"], state["o_unreviewed"], region)
if fresh:
    state["o_page"] = int_param(q.get("page", "1"), 1, 10**9, 1)
page = max(1, int(state["o_page"]))
df, total = queue.page(page, PER_PAGE)
n_pages = max(1, (total + PER_PAGE - 1) // PER_PAGE)
if page > n_pages:  # a link or a filter past the last page: show the last one, and say so
    if fresh:
        st.warning(f"The link asks for page {page:,}, but these filters give {n_pages:,} page(s); "
                   f"showing page {n_pages:,}.")
    page = n_pages
    df, total = queue.page(page, PER_PAGE)
state["o_page"] = page

url = {"model": model, "page": str(page)}
if state["o_unreviewed"]:
    url["unreviewed"] = "1"
if not state["o_flagged"]:
    url["flagged"] = "0"
if cause:
    url["cause"] = cause
if model == "consensus":
    url["cmodel"] = cmodel
if cluster is not None:
    url["cluster"] = str(cluster)
if "batch" in q:
    url["batch"] = q["batch"]
if region is not None:
    url["map"], url["region"] = region[0], region[1].text()
if dict(q) != url:
    q.from_dict(url)

progress = queue.progress()
st.progress(progress.reviewed / max(1, progress.flagged), text=progress.text())
st.number_input("Page", 1, n_pages, key="o_page")
if not total:
    st.info("No image matches these filters.")
else:
    st.write(f"{(page - 1) * PER_PAGE + 1:,}–{min(page * PER_PAGE, total):,} of {total:,} "
             f"{'flagged' if state['o_flagged'] else 'ranked'} entries (an entry is an image or a group of "
             f"near-identical frames; page {page} of {n_pages})")


# the highlighted entry, which the keys act on: kept while it is on this page, else the page's first
# unreviewed entry (or its first)
saved = rev.verdicts(df["path"])
on_page = [int(i) for i in df["image_id"]]
if state.get("o_current") not in on_page:
    todo = [int(r.image_id) for r in df.itertuples() if r.path not in saved]
    state["o_current"] = (todo or on_page or [None])[0]
current = state["o_current"]


def go_to(entry):
    """Make ``entry`` (rank, image_id) the highlighted one, on its page."""
    state["o_page"] = queue.page_of(entry["rank"], PER_PAGE)
    state["o_current"] = int(entry["image_id"])


def remember(text, undo, entry):
    state["o_undo"] = {"text": text, "undo": undo, "entry": entry}


def give(verdict):
    """A key or button: the verdict on the highlighted entry, then on to the next unreviewed one."""
    row = df[df["image_id"] == current]
    if not len(row):
        return
    entry = row.iloc[0][["rank", "image_id"]].to_dict()
    remember(f"{verdict} on #{int(entry['rank'])}", queue.give(row, verdict, ex.build, skip_reviewed=False), entry)
    nxt = queue.next_unreviewed(entry["rank"])
    if nxt:
        go_to(nxt)


def step(by):
    """Previous / next entry, across pages."""
    n = on_page.index(current) + by if current in on_page else 0
    if 0 <= n < len(on_page):
        state["o_current"] = on_page[n]
    elif 1 <= page + by <= n_pages:
        state["o_page"] = page + by
        state["o_current"] = None
        state["o_step_to_last"] = by < 0


def jump_unreviewed():
    row = df[df["image_id"] == current]
    nxt = queue.next_unreviewed(int(row["rank"].iloc[0]) if len(row) else 0)
    if nxt:
        go_to(nxt)
    else:
        state["o_message"] = "Every entry these filters show has a verdict."


def undo():
    last = state.pop("o_undo", None)
    if last:
        rev.restore(last["undo"], ex.build)
        go_to(last["entry"])
        state["o_message"] = f"Undone: {last['text']} ({len(last['undo']):,} entries)."


if state.pop("o_step_to_last", False) and on_page:  # "previous" from a page's first entry: the last one before
    state["o_current"] = current = on_page[-1]
keys = st.columns([1, 1, 1, 1, 1, 1.4, 1.2])
for col, verdict, key in zip(keys, reviews.VERDICTS, ("O", "F", "U")):
    col.button(verdict.capitalize(), key=f"key-{verdict}", shortcut=key, on_click=give, args=(verdict,),
               disabled=current is None, width="stretch")
keys[3].button("Previous", key="key-previous", shortcut="Left", on_click=step, args=(-1,), width="stretch")
keys[4].button("Next", key="key-next", shortcut="Right", on_click=step, args=(1,), width="stretch")
keys[5].button("Next unreviewed", key="key-unreviewed", shortcut="N", on_click=jump_unreviewed, width="stretch")
last = state.get("o_undo")
keys[6].button("Undo", key="key-undo", shortcut="Z", on_click=undo, disabled=not last, width="stretch",
               help=f"undo {last['text']}" if last else "nothing to undo")
if "o_message" in state:
    st.info(state.pop("o_message"))

with st.expander("One verdict for many entries"):
    b1, b2, b3 = st.columns([2, 1.2, 1])
    scope = b1.radio("Entries", ["this page", "ranks", "all these filters show"], horizontal=True, key="bulk_scope",
                     format_func=lambda s: {"this page": f"this page ({len(df)})",
                                            "all these filters show": f"all these filters show ({total:,})"}.get(s, s))
    lo = hi = None
    if scope == "ranks":
        r1, r2 = b1.columns(2)
        lo = r1.number_input("From rank", 1, value=1, key="bulk_from")
        hi = r2.number_input("To rank", 1, value=200, key="bulk_to")
    verdict = b2.segmented_control("Verdict", reviews.VERDICTS, key="bulk_verdict")
    keep = b2.checkbox("Keep verdicts already given", value=True, key="bulk_keep")
    if b3.button("Give it", key="bulk_give", disabled=verdict is None, type="primary"):
        chosen = df if scope == "this page" else queue.entries((lo, hi))
        done = queue.give(chosen, verdict, ex.build, skip_reviewed=keep)
        if len(done):
            remember(f"{verdict} on {len(done):,} entries", done, chosen.iloc[0][["rank", "image_id"]].to_dict())
        st.session_state["o_message"] = (f"{verdict} given to {len(done):,} of {len(chosen):,} entries"
                                          + (f" (at most {BULK_LIMIT:,} at once)" if len(chosen) >= BULK_LIMIT else "")
                                          + ("; undo with Z" if len(done) else "") + ".")
        st.rerun()

saved = rev.verdicts(df["path"])  # again: a key's verdict may have been saved since the first read
# with a "flagged by" filter, each caption also says where that filter matched (the cause names the strongest)
flagged = ex.why_flagged(df["image_id"]) if cause else {}
thumbs = ex.thumbnails(df["image_id"])
link_model = ex.model_names()[0] if model == "consensus" else model


def save(path, image_id, rank, before):
    v = state[f"verdict-{image_id}"]
    note = state[f"note-{image_id}"]
    rev.set_verdict(path, v, note, image_id=image_id, build=ex.build)
    remember(f"{v or 'no verdict'} on #{rank}", [(path, image_id) + before], {"rank": rank, "image_id": image_id})
    state["o_current"] = image_id


# a row of tiles at a time, their bottoms aligned, so the verdicts of a row line up whatever the picture's
# height or the reason's length; the highlighted tile is outlined (a border's padding would shift it)
st.html(ui.TILE_HIGHLIGHT_CSS)
for n, r in enumerate(df.itertuples()):
    if n % COLUMNS == 0:
        cols = st.columns(COLUMNS, vertical_alignment="bottom")
    i = int(r.image_id)
    verdict, note = saved.get(r.path, (None, ""))
    # the stored verdict wins on every run: another session's save shows up here too
    state[f"verdict-{i}"], state[f"note-{i}"] = verdict, note
    with cols[n % COLUMNS].container(key=f"tile-{i}" + ("-current" if i == current else "")):
        ui.picture(thumbs[i], f"#{r.rank} · id {i} · 1 in {ui.one_in_text(r.one_in)}{ui.copies_note(r.copies)}",
                   ui.similar_link(link_model, i))
        short, whole = ui.why_text(r.cause, flagged.get(i))
        st.caption(short, help=whole)  # a few words; the whole reason on hover or tap
        args = (r.path, i, int(r.rank), (verdict, note))
        st.segmented_control("Verdict", reviews.VERDICTS, key=f"verdict-{i}", on_change=save, args=args,
                             label_visibility="collapsed")
        st.text_input("Note", key=f"note-{i}", on_change=save, args=args, placeholder="note",
                      label_visibility="collapsed")

st.divider()
st.subheader("Export")
st.caption("The reviewed list holds every verdict (also those given in earlier builds); the flagged list holds "
           "every image the consensus flags (some model put it in its top 1%), with why and any verdict. "
           "All images with clusters and names: `python -m lib export --db PATH --out FILE.parquet`.")
e = st.columns(4)
for n, (what, make) in enumerate((("reviewed", export.reviewed_list), ("flagged", export.flagged_list))):
    for m, fmt in enumerate(export.FORMATS):
        e[2 * n + m].download_button(
            f"{what.capitalize()} list ({fmt.upper()})", data=lambda make=make, fmt=fmt: export.to_bytes(make(ex, rev), fmt),
            file_name=f"{what}-{ex.build.split('.')[0]}.{fmt}", on_click="ignore", key=f"dl-{what}-{fmt}")
