"""Clusters: the 2-D map of every image, a cluster's card and gallery, a region's gallery.

The clustering algorithm is picked in the sidebar (``?algo=``)."""
import altair as alt
import streamlit as st

import ui
from lib import images, reviews
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


left, right = st.columns([3, 2])
with left:
    pts = ex.map_points(model, algorithm=algo)
    st.caption(f"t-SNE map of all {ex.n_images:,} images; {len(pts):,} drawn (every cluster represented). "
               "Drag a rectangle to see the images inside it — the selection queries every image.")
    brush = alt.selection_interval(name="region", encodings=["x", "y"])
    chart = alt.Chart(pts).mark_circle(size=9, opacity=0.7).encode(
        x=alt.X("x:Q", axis=None), y=alt.Y("y:Q", axis=None),
        color=alt.Color("cluster:N", scale=alt.Scale(scheme="tableau20")),
        tooltip=["image_id", "cluster"]).add_params(brush).properties(height=520)
    event = st.altair_chart(chart, on_select="rerun", key=f"map-{model}-{algo}", width="stretch")
with right:
    labels = [("noise" if r.cluster < 0 else str(r.cluster)) + f"{name_of(r.cluster)}: {r.size:,} images "
              f"({r.share:.1%}), {ui.colour_label(r.color_name, r.color_share)}" for r in clusters.itertuples()]
    ids = [int(c) for c in clusters["cluster"]]
    ui.follow_url("cluster_pick", "cluster",
                  lambda raw: c if (c := int_param(raw, -1, max(ids), None)) in ids else ids[0], ids)
    cluster = st.selectbox("Cluster", ids, key="cluster_pick", format_func=dict(zip(ids, labels)).get)
    ui.to_url("cluster_pick", "cluster", str(cluster))
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
    ui.gallery(ex, edge["image_id"], [f"#{i} · margin {m:.2f}" for i, m in zip(edge.image_id, edge.margin)],
               model=model, copies=edge["copies"])
st.subheader(f"Cluster {cluster}: random images")
ui.gallery(ex, rnd["image_id"], model=model, copies=rnd["copies"])
st.caption("Near-identical frames of one pass (a near-duplicate group) show as one picture with their count.")

sel = (event.selection.get("region") if event and event.selection else None) or {}
if sel.get("x") and sel.get("y"):
    total, per_cluster, sample = ex.region(model, sel["x"], sel["y"], limit=24, algorithm=algo)
    st.subheader(f"Selected region: {total:,} images")
    if total:
        st.dataframe(per_cluster, hide_index=True)
        ui.gallery(ex, sample["image_id"], [f"#{i} (c{c})" for i, c in zip(sample.image_id, sample.cluster)], model=model)
else:
    st.info("Select a region of the map to list the images in it.")

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
