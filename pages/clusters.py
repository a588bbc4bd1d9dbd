"""Clusters: the 2-D map of every image, a cluster's card and gallery, a region's gallery.

The clustering algorithm is picked in the sidebar (``?algo=``)."""
import altair as alt
import streamlit as st

import ui

ex = ui.explorer()
model = ui.pick_model(ex)
algo = ui.pick_algorithm(ex, model)
st.title(f"Clusters: {model}")
clusters = ex.clusters(model, algo)

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
    labels = [("noise" if r.cluster < 0 else str(r.cluster)) + f": {r.size:,} images ({r.share:.1%}), mostly {r.color_name}"
              for r in clusters.itertuples()]
    wanted = st.query_params.get("cluster", "")
    ids = list(clusters["cluster"])
    ok = wanted.lstrip("-").isdigit() and int(wanted) in ids
    idx = ids.index(int(wanted)) if ok else 0
    choice = st.selectbox("Cluster", range(len(ids)), index=idx, format_func=lambda i: labels[i])
    cluster = ids[choice]
    st.query_params["cluster"] = str(cluster)
    row = clusters.iloc[choice]
    n_vehicles, top = ex.cluster_vehicles(model, cluster, algorithm=algo)
    m1, m2, m3 = st.columns(3)
    m1.metric("Size", f"{int(row['size']):,} images", help="share of all images: " + f"{row['share']:.1%}")
    m2.metric("Colour", row["color_name"] or "—", help="most common colour measured at the centre of its images")
    m3.metric("Vehicles", f"{n_vehicles:,}")
    st.caption("Vehicles with most photos here: " + ", ".join(
        f"`{v.vehicle_id}` ({v.photos} of its {v.of_all})" for v in top.itertuples()))

rep, rnd = ex.cluster_gallery(model, cluster, n=12, algorithm=algo)
st.subheader(f"Cluster {cluster}: nearest the centre")
ui.gallery(ex, rep["image_id"], model=model)
edge = ex.cluster_boundary(model, cluster, n=6, algorithm=algo)
if len(edge):
    st.subheader(f"Cluster {cluster}: on the boundary")
    st.caption("Smallest margin between the distance to this cluster's centre and to the next one.")
    ui.gallery(ex, edge["image_id"], [f"#{i} · margin {m:.2f}" for i, m in zip(edge.image_id, edge.margin)], model=model)
st.subheader(f"Cluster {cluster}: random images")
ui.gallery(ex, rnd["image_id"], model=model)

sel = (event.selection.get("region") if event and event.selection else None) or {}
if sel.get("x") and sel.get("y"):
    total, per_cluster, sample = ex.region(model, sel["x"], sel["y"], limit=24, algorithm=algo)
    st.subheader(f"Selected region: {total:,} images")
    if total:
        st.dataframe(per_cluster, hide_index=True)
        ui.gallery(ex, sample["image_id"], [f"#{i} (c{c})" for i, c in zip(sample.image_id, sample.cluster)], model=model)
else:
    st.info("Select a region of the map to list the images in it.")
