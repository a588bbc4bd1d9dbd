"""Widgets shared by the pages: the database handle, the model picker, galleries.

Layout only; every query is a method of :class:`lib.queries.Explorer`.
"""
from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from lib import batches, firststart, images, mapview, reviews, search, store
from lib.progress import Progress
from lib.queries import Explorer

ROOT = Path(__file__).resolve().parent
DB_PATH = Path(os.environ.get("VEHICLE_DB", ROOT / "data" / "vehicles.duckdb"))
DEMO_DIR = Path(os.environ.get("VEHICLE_DEMO_DIR", ROOT / "data" / "demo"))
DEMO_VEHICLES = int(os.environ.get("VEHICLE_DEMO_VEHICLES", str(firststart.DEMO_VEHICLES)))
PAGES = {  # url path -> file, title
    "overview": ("pages/overview.py", "Overview"),
    "metrics": ("pages/metrics.py", "Metrics"),
    "clusters": ("pages/clusters.py", "Clusters"),
    "similar": ("pages/similar.py", "Similar"),
    "outliers": ("pages/outliers.py", "Outliers"),
    "compare": ("pages/compare.py", "Compare"),
}


@st.cache_resource(max_entries=2, show_spinner=False)
def _explorer(build_path):
    return Explorer(build_path)


def _leave_legacy_pages_mode():
    # Streamlit treats an app with a pages/ folder as a legacy (v1) multipage
    # app until streamlit_app.py has called st.navigation once; a shared deep
    # link opened first on a fresh server would run the page alone. Switch to
    # st.navigation mode and rerun through streamlit_app.py.
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


def explorer():
    """The Explorer of the newest complete build; a new build is picked up on the next rerun.

    Every page gets its data here, so the password gate is checked here too:
    a page run on its own (a deep link on a fresh server) shows nothing either.
    """
    _leave_legacy_pages_mode()
    require_password()
    real = store.resolve(DB_PATH)
    if real is None:
        st.error(f"No database at `{DB_PATH}`. Build one with `python -m lib load DATA --db {DB_PATH}` "
                 "or start the app with `make run`, which builds the demo.")
        st.stop()
    ex = _explorer(str(real))
    if ex.schema_version != store.SCHEMA_VERSION:
        st.error(f"This database was built by {'an older' if ex.schema_version < store.SCHEMA_VERSION else 'a newer'} "
                 f"version of the loader (schema {ex.schema_version}; this app reads schema "
                 f"{store.SCHEMA_VERSION}). Rebuild it: `python -m lib load DATA --db {DB_PATH}` "
                 "(your verdicts and cluster names are kept apart and survive the rebuild).")
        st.stop()
    background_note(str(real))
    return ex


def background_note(build):
    """Say what a background load is still computing; rerun the page when its build lands."""
    status = firststart.background_status(DB_PATH)
    if status is None:
        return
    if status["running"]:
        _watch_background(build)
    else:
        st.warning(firststart.describe(status))


@st.fragment(run_every=5)
def _watch_background(build):
    status = firststart.background_status(DB_PATH)
    if str(store.resolve(DB_PATH)) != build or status is None or not status["running"]:
        st.rerun()  # the whole page: a new build, or the load stopped
    st.info(firststart.describe(status), icon=":material/hourglass_top:")


def review_store():
    """The reviews file beside the database link (verdicts, cluster names), shared by all sessions."""
    return _reviews(str(reviews.default_path(DB_PATH)))


@st.cache_resource(max_entries=4, show_spinner=False)
def _reviews(path):
    return reviews.Reviews(path)  # holds no connection: each call opens its own


def url_choice(key, options, default, label=None, where=st):
    """The URL's value for ``key`` if it is one of ``options`` (as strings), else ``default``.

    A value that is not an option gets a warning naming it, the choices and what is shown instead,
    never a traceback.
    """
    raw = st.query_params.get(key)
    by_text = {str(o): o for o in options}
    if raw is None or raw == "":
        return default
    if raw in by_text:
        return by_text[raw]
    choices = ", ".join(list(by_text)[:12]) + (", …" if len(by_text) > 12 else "")
    where.warning(f"Ignored {label or key} {raw[:40]!r} from the link: not one of the choices here "
                  f"({choices}); showing {default}.")
    return default


def bounds_param(param, label, instead="showing the whole map"):
    """The URL's ``param`` as map bounds (:func:`lib.mapview.parse_bounds`), None when absent.

    A value that is not a rectangle gets a warning naming it and is dropped from the link.
    """
    raw = st.query_params.get(param)
    if not raw:
        return None
    try:
        return mapview.parse_bounds(raw)
    except ValueError as e:
        st.warning(f"Ignored {label} from the link: {str(e)[:80]}; {instead}.")
        st.query_params.pop(param, None)
        return None


def follow_url(key, param, from_url, options=None):
    """Set the widget ``key`` from the URL's ``param``, unless the URL still holds what the widget wrote.

    ``from_url(raw)`` turns the URL's text (None when absent) into a value of
    the widget. A widget the URL drives has a key and no default: without a
    key Streamlit tells widgets apart by their defaults, and a default taken
    from the URL changes with every edit, so each second edit went to a
    widget no longer on the page and snapped back. The URL wins when it
    changed by other means (a shared link, a button, another page), or when
    the widget's value is no longer one of ``options``.
    """
    raw = st.query_params.get(param)
    state = st.session_state
    if key not in state or state.get("_url_" + key) != raw or (options is not None and state[key] not in options):
        state[key] = from_url(raw)
        state["_url_" + key] = raw


def to_url(key, param, text):
    """Write the widget ``key``'s value to the URL's ``param`` as ``text`` (None removes it)."""
    if text is None:
        st.query_params.pop(param, None)
    else:
        st.query_params[param] = text
    st.session_state["_url_" + key] = text


def pick_batch(label="Batch"):
    """Sidebar picker of assigned batches (``?batch=``); returns a :class:`lib.batches.Batch` or None."""
    names = batches.list_batches(DB_PATH)
    if not names:
        return None
    none = "-"  # no batch; never a batch name (see lib.batches.check_name), and not None, which shows as empty
    opts = [none] + names
    follow_url("batch_pick", "batch", lambda raw: url_choice("batch", names, none, "batch"), opts)
    name = st.sidebar.selectbox(label, opts, key="batch_pick",
                                format_func=lambda n: "none (training images)" if n == none else n)
    to_url("batch_pick", "batch", None if name == none else name)
    if name == none:
        return None
    return _batch(str(DB_PATH), name, (batches.batch_path(DB_PATH, name)).stat().st_mtime)


@st.cache_resource(max_entries=4, show_spinner=False)
def _batch(db_path, name, mtime):
    return batches.Batch(db_path, name)


class StreamlitProgress(Progress):
    """Loader stages shown as a Streamlit progress bar."""

    def __init__(self, container):
        super().__init__()
        self.box = container
        self.bar = None
        self.total = self.done = 0

    def start(self, name, total, model):
        label = f"{model}: {name}" if model else name
        self.total, self.done = total or 0, 0
        self.bar = self.box.progress(0.0, text=label)
        self.label = label

    def advance(self, n=1):
        self.done += n
        if self.bar is not None and self.total:
            self.bar.progress(min(1.0, self.done / self.total), text=self.label)

    def end(self, name, model, seconds):
        if self.bar is not None:
            self.bar.progress(1.0, text=f"{self.label}: {seconds:.1f}s")


def _password():
    try:
        return st.secrets.get("password")
    except FileNotFoundError:  # no secrets file at all: an open app
        return None


def signed_in():
    """True when the app has no password or this session gave it."""
    return not _password() or bool(st.session_state.get("signed_in"))


def require_password():
    """When ``password`` is set in st.secrets, show nothing else until it is given.

    Called by streamlit_app.py before the page runs, so it guards every page.
    """
    import hmac

    if signed_in():
        return
    expected = _password()
    st.title("Vehicle cluster explorer")
    given = st.text_input("Password", type="password")
    if given and hmac.compare_digest(given.encode(), str(expected).encode()):
        st.session_state["signed_in"] = True
        st.rerun()
    if given:
        st.error("Wrong password.")
    st.stop()


def ensure_database():
    """Build the demo's first look on first start, showing progress; the full load follows in the background."""
    if store.resolve(DB_PATH) is not None:
        return
    st.title("Building the demo database")
    st.write("No database yet: generating the demo dataset and a first look at it (KMeans on each model, "
             "about a minute). The other algorithms and the combinations of models follow in the background.")
    firststart.first_start(DEMO_DIR, DB_PATH, n_vehicles=DEMO_VEHICLES, progress=StreamlitProgress(st.container()))
    st.rerun()


def pick_model(ex, extra=(), purpose=None, default=None):
    """Sidebar model picker, kept in the URL (``?model=``) so links carry it.

    Without ``model=`` in the URL the page opens on ``default``, else on the
    model recommended for ``purpose`` (``Explorer.recommended``), and says so.
    """
    names = list(extra) + ex.model_names()
    why = None
    if default is None and purpose:
        default, why = ex.recommended(purpose)
    if default not in names:
        default, why = (names[len(extra)] if ex.model_names() else names[0]), None
    follow_url("model_picker", "model", lambda raw: url_choice("model", names, default, where=st.sidebar), names)
    model = st.sidebar.selectbox("Model", names, key="model_picker")
    to_url("model_picker", "model", model)
    if why and model == default:
        st.sidebar.caption(f"{model}: {why}")
    return model


def pick_algorithm(ex, model):
    """Sidebar clustering-algorithm picker, kept in the URL (``?algo=``); every cluster view follows it."""
    from lib.algorithms import LABELS

    names = ex.algorithms(model)
    follow_url("algo_picker", "algo",
               lambda raw: url_choice("algo", names, names[0], f"algorithm for {model}", st.sidebar), names)
    algo = st.sidebar.selectbox("Clustering algorithm", names, key="algo_picker",
                                format_func=lambda a: LABELS.get(a, a))
    to_url("algo_picker", "algo", algo)
    return algo


def pick_image(ex, help=""):
    """The search box, filled from and written back to the URL's ``image``; returns one image ID.

    It takes an image ID, a file name, a path (any prefix) or a vehicle ID
    (:func:`lib.search.find`). A vehicle, or a text that matches several
    images, is shown as a gallery to pick from; nothing matching gets a
    warning. Either way the page stops there, with what was typed in the URL.
    """
    follow_url("image_box", "image", lambda raw: raw or "0")
    typed = st.text_input("Image ID, file name, path or vehicle (v12345)", key="image_box",
                          help=f"image IDs 0 … {ex.n_images - 1:,}; a path may carry any prefix" + help)
    to_url("image_box", "image", typed.strip() or None)  # the link says what was asked, even when nothing matches
    found = search.find(ex, typed)
    if found.kind == "image":
        if found.also and st.button(f"{typed.strip()} is also a vehicle ID: show vehicle {found.also[1:]}"):
            st.query_params["image"] = found.also
            st.rerun()
        return found.image_ids[0]
    if found.kind == "none":
        st.warning(found.message)
        st.stop()
    st.info(found.message)
    if found.kind == "vehicle":
        together = search.vehicle_clusters(ex, found.vehicle_id)
        st.caption("Does the car stay together? Per model, the clusters its photos fall in.")
        st.dataframe(together, hide_index=True, width="stretch",
                     column_config={"largest_share": st.column_config.ProgressColumn(
                         "in its commonest cluster", format="percent", min_value=0, max_value=1)})
    paths = ex.paths(found.image_ids)
    clicked = gallery(ex, found.image_ids, [f"#{i} · {paths[i].rsplit('/', 1)[-1]}" for i in found.image_ids],
                      buttons="open")
    if clicked is not None:
        st.query_params["image"] = str(clicked)
        st.rerun()
    st.stop()


def picture(jpeg, caption, link=None, where=st):
    """One thumbnail (JPEG bytes), inline in the page (see :func:`lib.images.data_uri`)."""
    where.image(images.data_uri(jpeg), caption=caption, width="stretch", link=link)


def similar_link(model, image_id):
    return f"/similar?model={model}&image={int(image_id)}"


def colour_label(name, share):
    """A cluster's colour for people: "mostly red (62%)", "mixed colours (top: 31%)", or nothing."""
    if not name:
        return "no colour measured"
    if name == images.MIXED:
        return f"mixed colours (the commonest {share:.0%})" if share == share else "mixed colours"
    return f"mostly {name} ({share:.0%})"


def one_in_text(n):
    """An outlier's rarity for people: "1 in 3,400", "1 in >1,000,000,000"."""
    return ">1,000,000,000" if n >= 1e9 else f"{int(n):,}"


def margin_text(margin):
    """A boundary margin for people: 3 significant digits, so cosine-scale margins (0.000412) do not read
    as "0.00", and no "-0" from rounding."""
    m = float(margin)
    return "0" if abs(m) < 1e-12 else f"{m:.3g}"


TILE_HIGHLIGHT_CSS = """<style>div[class*="st-key-tile-"][class*="-current"] {
    box-shadow: 0 0 0 2px #ff4b4b; border-radius: 0.5rem; }</style>"""  # an outline takes no room


def why_text(cause, flagged_by=None, words=5):
    """An outlier's reason for its tile: ``(a few words, the whole reason)``.

    ``("why: osnet: far from every neighbour…", "why: osnet: far from every neighbour, sparser than its
    neighbours; unusual in 1 of 3 models · top 1% by osnet: knn, lof")``: the first ``words`` words of the
    reason's first clause, with "…" when there is more, which the second holds (and, when a 'flagged by'
    filter is set, where it matched), for a tooltip.
    """
    where = f"top 1% by {flagged_by}" if flagged_by else ""
    if not cause:
        return "nothing unusual stands out", where or None
    first = cause.split(";")[0].split()
    more = len(first) > words or ";" in cause
    return ("why: " + " ".join(first[:words]).rstrip(",") + ("…" if more else ""),
            "why: " + cause + (f" · {where}" if where else ""))


def cluster_labels(clusters, names=None):
    """A cluster picker's labels, one per row of ``clusters`` (:meth:`lib.queries.Explorer.clusters`):
    ``"3 “white vans”: 12,345 images (4.1%), mostly white (81%)"`` (``names``: ``{cluster: {"name": …}}``)."""
    names = names or {}
    return [("noise" if r.cluster < 0 else str(r.cluster))
            + (f" “{names[r.cluster]['name']}”" if r.cluster in names else "")
            + f": {r.size:,} images ({r.share:.1%}), {colour_label(r.color_name, r.color_share)}"
            for r in clusters.itertuples()]


def copies_note(copies):
    """" · 4 frames" for a near-duplicate group shown as one tile, else nothing."""
    return f" · {int(copies)} frames" if copies and int(copies) > 1 else ""


def gallery(ex, image_ids, captions=None, model=None, columns=6, buttons=None, copies=None):
    """A grid of thumbnails; each links to its similar-images page when ``model`` is given.

    ``buttons``: optional label; a button under every image, returns the id clicked.
    ``copies``: per image, the size of the near-duplicate group it stands for (said in the caption).
    """
    ids = [int(i) for i in image_ids]
    if captions is None:
        captions = [f"#{i}" for i in ids]
    if copies is not None:
        captions = [c + copies_note(n) for c, n in zip(captions, copies)]
    thumbs = ex.thumbnails(ids)
    clicked = None
    cols = st.columns(columns)
    for n, image_id in enumerate(ids):
        with cols[n % columns]:
            picture(thumbs[image_id], captions[n], similar_link(model, image_id) if model else None)
            if buttons and st.button(buttons, key=f"btn-{image_id}-{n}"):
                clicked = image_id
    return clicked
