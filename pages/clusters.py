"""Clusters: the 2-D map of every image, a cluster's card and gallery, a region's gallery.

The clustering algorithm is picked in the sidebar (``?algo=``)."""
import altair as alt
import pandas as pd
import streamlit as st

import ui
from lib import images, mapview, reviews
from lib.queries import DEFAULT_ALGORITHM, int_param

ex = ui.explorer()
rev = ui.review_store()
model = ui.pick_model(ex, purpose="groups")
algo = ui.pick_algorithm(ex, model)
st.title(f"Clusters: {model}")
clusters = ex.clusters(model, algo)
# names are given to the default clustering's clusters (what assign and export use)
names, orphans = reviews.current_names(ex, rev, model) if algo == DEFAULT_ALGORITHM else ({}, [])


def name_of(c):
    return f" “{names[c]['name']}”" if c in names else ""


# the map's state lives in the link: view (zoom bounds), region (a dragged rectangle), image (a clicked point)
q, state = st.query_params, st.session_state
view = ui.bounds_param("view", "the zoomed view")
region = ui.bounds_param("region", "the selected region")
picked = None
if q.get("image"):
    picked = int_param(q["image"], 0, ex.n_images - 1, None)
    if picked is None:
        st.warning(f"Ignored image {q['image'][:40]!r} from the link: image IDs are 0 … {ex.n_images - 1:,}.")
        q.pop("image")
state.setdefault("map_nonce", 0)


def set_map(**params):
    """Write map state to the link (None removes) and draw a fresh chart (a new key drops its old brush)."""
    for k, v in params.items():
        if v is None:
            q.pop(k, None)
        else:
            q[k] = v
    state["map_nonce"] += 1


whole = mapview.extent(ex, model)
shown = view or whole
left, right = st.columns([3, 2])
with left:
    pts = mapview.points(ex, model, view, algorithm=algo)
    dens = mapview.density(ex, model, shown)
    in_view = int(dens["images"].sum())
    sizes = dict(zip(clusters["cluster"].astype(int), clusters["size"].astype(int)))
    colours = mapview.cluster_colours(sizes)
    pts = pts.assign(colour=pts["cluster"].map(colours))  # a copy: the sample is cached for every session
    st.caption(f"t-SNE map: {in_view:,} images in this view" + (f" (zoomed; {ex.n_images:,} in all)" if view else "")
               + f", shaded by how many lie in each cell; {len(pts):,} drawn as points, every cluster represented. "
               "Drag a rectangle to list the images inside it (every image, not only those drawn); "
               "click a point to open it."
               + (f" {len(sizes)} clusters are more than eyes tell apart: the {len(sizes) - mapview.MAX_COLOURS + 1} "
                  "smallest are drawn in light grey." if len(sizes) > mapview.MAX_COLOURS else ""))
    xs = alt.Scale(domain=[shown.x0, shown.x1], nice=False, zero=False)
    ys = alt.Scale(domain=[shown.y0, shown.y1], nice=False, zero=False)
    brush = alt.selection_interval(name="region", encodings=["x", "y"])
    pick = alt.selection_point(name="pick", fields=["image_id"], on="click", clear=False)
    shade = alt.Chart(dens).mark_rect(color="#2b2b2b").encode(
        x=alt.X("x0:Q", scale=xs, axis=None), x2="x1", y=alt.Y("y0:Q", scale=ys, axis=None), y2="y1",
        opacity=alt.Opacity("images:Q", scale=alt.Scale(type="log", range=[0.04, 0.45]), legend=None),
        tooltip=[alt.Tooltip("images:Q", title="images in this cell", format=",")])
    dot = min(60, max(10, 40000 // max(len(pts), 1)))  # fewer points when zoomed in: larger, easier to click
    dots = alt.Chart(pts).mark_circle(size=dot, opacity=0.75).encode(
        x=alt.X("x:Q", scale=xs, axis=None), y=alt.Y("y:Q", scale=ys, axis=None),
        color=alt.Color("colour:N", scale=None), tooltip=["image_id", "cluster"]).add_params(brush, pick)
    layers = [shade, dots]
    if region is not None:
        frame = pd.DataFrame([vars(region)])
        layers.append(alt.Chart(frame).mark_rect(fill=None, stroke="#d62728", strokeWidth=2).encode(
            x="x0:Q", x2="x1", y="y0:Q", y2="y1"))
    here = mapview.locate(ex, model, picked) if picked is not None else None
    if here is not None:
        mark = pd.DataFrame([{"x": here[0], "y": here[1], "image_id": picked}])
        layers.append(alt.Chart(mark).mark_point(shape="circle", size=420, stroke="#000", strokeWidth=3,
                                                 fill="#ffeb3b", opacity=1).encode(x="x:Q", y="y:Q"))
    chart = alt.layer(*layers).properties(height=540)
    event = st.altair_chart(chart, on_select="rerun", width="stretch",
                            key=f"map-{model}-{algo}-{state['map_nonce']}")
    sel = (event.selection if event and event.selection else None) or {}
    dragged = mapview.from_selection(sel.get("region") or {})
    clicked = [p["image_id"] for p in sel.get("pick") or [] if "image_id" in p]
    seen = (dragged, tuple(clicked))
    if seen != state.get("map_seen"):  # a new drag or click (the chart keeps reporting the last one)
        state["map_seen"] = seen
        if clicked and int(clicked[0]) != picked:
            c = ex.assignment(model, int(clicked[0]), algo)
            set_map(image=str(int(clicked[0])), cluster=str(c) if c is not None else None)
            st.rerun()
        if dragged is not None and dragged != region:
            set_map(region=dragged.text())
            st.rerun()
    b1, b2, b3, b4 = st.columns(4)
    if b1.button("Zoom to region", disabled=region is None, help="draw only the selected region, in more detail"):
        set_map(view=region.text(), region=None)
        st.rerun()
    if b2.button("Zoom out", disabled=view is None):
        wider = mapview.zoom_around(shown, (shown.x0 + shown.x1) / 2, (shown.y0 + shown.y1) / 2, factor=2.5)
        set_map(view=None if wider.covers(whole) else wider.text())
        st.rerun()
    if b3.button("Whole map", disabled=view is None):
        set_map(view=None)
        st.rerun()
    if b4.button("Clear region", disabled=region is None):
        set_map(region=None)
        st.rerun()
    # pan a zoomed view by half its size (a drag draws a region, so moving is by buttons)
    pans = st.columns(4)
    for col, (label, dx, dy) in zip(pans, (("← Left", -0.5, 0), ("→ Right", 0.5, 0), ("↑ Up", 0, 0.5),
                                           ("↓ Down", 0, -0.5))):
        if col.button(label, key=f"pan-{label}", disabled=view is None, help="move the zoomed view by half"):
            set_map(view=mapview.pan(view, dx, dy).text())
            st.rerun()
    if picked is not None and here is not None and view is not None and not view.contains(*here):
        st.info(f"Image #{picked} lies outside this view.")
        if st.button(f"Zoom to #{picked}"):
            set_map(view=mapview.zoom_around(whole, *here, factor=0.2).text())
            st.rerun()
labels = ui.cluster_labels(clusters, names)
ids = [int(c) for c in clusters["cluster"]]
# a picker per model and algorithm: one shared widget kept showing the last model's label for its cluster
pick_key = f"cluster_pick-{model}-{algo}"
opening = ex.assignment(model, picked, algo) if picked is not None else None  # a picked image opens its cluster
ui.follow_url(pick_key, "cluster", lambda raw: c if (c := int_param(raw, -1, max(ids), None)) in ids
              else opening if opening in ids else ids[0], ids)
with right:
    if picked is not None:
        info, c = ex.image(picked), ex.assignment(model, picked, algo)
        i1, i2 = st.columns([1, 2])
        ui.picture(ex.thumbnails([picked])[picked], f"#{picked}", ui.similar_link(model, picked), where=i1)
        i2.markdown(f"**Image #{picked}** · vehicle `{info['vehicle_id']}` · "
                    + (f"cluster {c}" + (" (shown below)" if state[pick_key] == c else "") if c is not None
                       else "no cluster")
                    + f"\n\n[Similar cars →]({ui.similar_link(model, picked)})")
        if here is None:
            i2.caption(f"Not on {model}'s map.")
        if c is not None and state[pick_key] != c and i2.button(f"Show cluster {c}"):
            set_map(cluster=str(c))
            st.rerun()
        if i2.button("Clear image"):
            set_map(image=None)
            st.rerun()
    if region is not None:
        total, per_cluster, sample = mapview.region(ex, model, region, limit=8, algorithm=algo)
        top = ", ".join(f"{r.cluster} ({r.images:,})" for r in per_cluster.head(5).itertuples())
        st.markdown(f"**Selected region: {total:,} images**" + (f" — clusters {top}"
                    + (", …" if len(per_cluster) > 5 else "") if total else ""))
        if total:
            ui.gallery(ex, sample["image_id"], [f"#{i} · c{c}" for i, c in zip(sample.image_id, sample.cluster)],
                       model=model, columns=4)
            st.markdown(f"[Review these {total:,} images in Outliers →]"
                        f"(/outliers?model=consensus&map={model}&region={region.text()}&flagged=0)")
    cluster = st.selectbox("Cluster", ids, key=pick_key, format_func=dict(zip(ids, labels)).get)
    ui.to_url(pick_key, "cluster", str(cluster))
    choice = ids.index(cluster)
    row = clusters.iloc[choice]
    n_vehicles, top = ex.cluster_vehicles(model, cluster, algorithm=algo)
    m1, m2, m3 = st.columns(3)
    m1.metric("Images", f"{int(row['size']):,}", help="share of all images: " + f"{row['share']:.1%}")
    m2.metric("Colour", row["color_name"] or "—",
              help=ui.colour_label(row["color_name"], row["color_share"]).capitalize() + " of its images' body "
                   f"colours; '{images.MIXED}' when no colour holds half of them.")
    m3.metric("Vehicles", f"{n_vehicles:,}")
    st.caption("Vehicles with most photos here: " + ", ".join(
        f"`{v.vehicle_id}` ({v.photos} of its {v.of_all})" for v in top.itertuples()))
    if algo == DEFAULT_ALGORITHM:
        given = names.get(cluster)
        name_key = f"name-{model}-{cluster}"
        st.text_input("Name of this cluster", value=given["name"] if given else "", key=name_key,
                      on_change=lambda: reviews.name_cluster(ex, rev, model, cluster, st.session_state[name_key]),
                      placeholder="e.g. white vans from the rear",
                      help="Saved with the reviews, against this build. A later build shows it on the cluster that "
                           f"holds most of the same images (Jaccard overlap at least {reviews.CARRY_JACCARD:.0%}), "
                           "else lists it under 'names from older builds'.")
        if given and given["build"] != ex.build:
            st.caption(f"Named in build `{given['build']}`; carried over (overlap {given['jaccard']:.0%}).")
        if orphans:
            with st.expander(f"Names from older builds that match no cluster here ({len(orphans)})"):
                st.dataframe(orphans, hide_index=True)

rep, rnd = ex.cluster_gallery(model, cluster, n=12, algorithm=algo)
st.subheader(f"Cluster {cluster}{name_of(cluster)}: nearest the centre")
ui.gallery(ex, rep["image_id"], model=model, copies=rep["copies"])
edge = ex.cluster_boundary(model, cluster, n=6, algorithm=algo)
if len(edge):
    st.subheader(f"Cluster {cluster}: on the boundary")
    st.caption("Smallest margin between the distance to this cluster's centre and to the next one.")
    ui.gallery(ex, edge["image_id"], [f"#{i} · margin {ui.margin_text(m)}" for i, m in zip(edge.image_id, edge.margin)],
               model=model, copies=edge["copies"])
st.subheader(f"Cluster {cluster}: random images")
ui.gallery(ex, rnd["image_id"], model=model, copies=rnd["copies"])
st.caption("Near-identical frames of one pass (a near-duplicate group) show as one picture with their count.")

batch = ui.pick_batch("New batch")
if batch is not None:
    st.divider()
    st.subheader(f"New batch `{batch.name}`: {batch.n_images:,} images")
    if batch.meta.get("build") != ex.build:
        st.warning(f"This batch was assigned against build `{batch.meta.get('build')}`; its cluster numbers are "
                   f"that build's, and this is `{ex.build}`. Assign it again for this build's clusters.")
    elif model not in batch.models():
        st.info(f"The batch has no assignment under {model}.")
    else:
        st.caption("Each new image went to the nearest cluster centre. confidence = 1 − d1/d2 (nearest vs "
                   "second-nearest centre); novel = farther from its centre than 99% of that cluster's own images.")
        st.dataframe(batch.per_cluster(model), hide_index=True)
        ui.follow_url("novel_pick", "novel", lambda raw: raw == "1")
        novel_only = st.toggle("Novel images only", key="novel_pick")
        ui.to_url("novel_pick", "novel", "1" if novel_only else None)
        shown = batch.images(model, cluster, novel_only=novel_only)
        st.write(f"Batch images assigned to cluster {cluster}" + (" (novel only)" if novel_only else ""))
        ui.gallery(batch, shown["image_id"], [f"{r.path.split('/')[-1]} · conf {r.confidence:.2f}"
                                              + (" · novel" if r.novel else "") for r in shown.itertuples()])
