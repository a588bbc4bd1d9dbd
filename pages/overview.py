"""Overview: the dataset and one row per model."""
import altair as alt
import pandas as pd
import streamlit as st

import ui
from lib.images import COLOR_NAMES, MIXED, MIXED_RGB

ex = ui.explorer()
s = ex.summary()
st.title("Vehicle cluster explorer")
st.caption(f"Build `{s['build']}`, made {s['built_at']} in {s['load_seconds']:.0f} s.")
c = st.columns(5)
c[0].metric("Images", f"{s['images']:,}")
c[1].metric("Vehicles", f"{s['vehicles']:,}")
c[2].metric("Models", s["models"])
bad = sum(v for k, v in s["image_status"].items() if k != "ok")
c[3].metric("Images without thumbnail", f"{bad:,}")
c[4].metric("In near-duplicate groups", f"{s['duplicate_images'] / max(s['images'], 1):.1%}",
            help=f"{s['duplicate_images']:,} images in {s['duplicate_groups']:,} groups of near-identical frames "
                 "(several frames of one pass). Outlier scores, the review and similar-car search count a group "
                 "as one image.")

st.subheader("Models")
models = ex.models().sort_values(["rank_groups", "model"])
models["dims"] = [f"{d:,} → {p}" for d, p in zip(models["dim"], models["pca_dim"])]
# the columns that decide; every other score is on Compare (a wider table did not fit the page)
st.dataframe(
    models[["rank_groups", "model", "structure", "dims", "explained_variance", "chosen_k", "silhouette",
            "davies_bouldin", "map_knn_preservation"]],
    hide_index=True, width="stretch",
    column_config={
        "rank_groups": st.column_config.NumberColumn("groups rank", width="small", help="1 = most interpretable "
                                                     "groups; the Compare page has both recommendations"),
        "model": st.column_config.TextColumn("model", pinned=True),
        "dims": st.column_config.TextColumn("dims → PCA", help="descriptor dimensions and those PCA kept"),
        "explained_variance": st.column_config.NumberColumn("variance kept", format="percent", width="small"),
        "chosen_k": st.column_config.NumberColumn("k", width="small"),
        "davies_bouldin": st.column_config.NumberColumn("Davies–Bouldin ↓", format="%.2f", width="small"),
        "silhouette": st.column_config.NumberColumn("silhouette ↑", format="%.3f", width="small"),
        "map_knn_preservation": st.column_config.NumberColumn("map 10-NN kept", format="%.2f", width="small"),
    })
broken = models[models["nonfinite_rows"] > 0]
if len(broken):
    st.warning("Rows with NaN/inf in their descriptor (ranked first among the outliers): " + ", ".join(
        f"{r.model} {int(r.nonfinite_rows):,}" for r in broken.itertuples()))
st.caption("Scores are for the final clustering at the chosen k, computed on a random sample "
           f"of {int(models['sweep_sample_rows'].max()):,} rows (silhouette on "
           f"{int(models['silhouette_sample_rows'].max()):,}). 'map 10-NN kept' is the share of each "
           "image's 10 nearest neighbours that stay among its 10 nearest on the 2-D map.")

st.subheader("Cluster sizes")
model = ui.pick_model(ex, purpose="groups")
algo = ui.pick_algorithm(ex, model)
cl = ex.clusters(model, algo)
names = [*COLOR_NAMES, MIXED]
palette = ["#%02x%02x%02x" % rgb for rgb in (*COLOR_NAMES.values(), MIXED_RGB)]
st.caption("Bars are coloured by the most common body colour of the cluster's images, "
           f"{MIXED} when no colour holds half of them.")
st.altair_chart(alt.Chart(cl).mark_bar(stroke="#888", strokeWidth=0.5).encode(
    x=alt.X("cluster:O"), y=alt.Y("size:Q"),
    color=alt.Color("color_name:N", title="body colour", scale=alt.Scale(domain=names, range=palette)),
    tooltip=["cluster", "size", alt.Tooltip("share:Q", format=".1%"), "color_name"]), width="stretch")

with st.expander("Near-duplicate threshold"):
    hist, threshold = ex.nearest_distances(model)
    st.caption(f"Every image's distance to its nearest other image under {model}; the red line is this model's "
               f"near-duplicate threshold ({threshold:.3g}, a quarter of the median). Frames of one pass sit at "
               "the far left; a pair is a near-duplicate when most models put it below their line.")
    st.altair_chart(alt.Chart(hist).mark_bar(color="#8899aa").encode(
        x=alt.X("start:Q", title="distance to the nearest other image", bin="binned"), x2="end:Q",
        y=alt.Y("images:Q"), tooltip=["start", "end", "images"])
        + alt.Chart(pd.DataFrame({"t": [threshold]})).mark_rule(color="red", strokeWidth=2).encode(x="t:Q"),
        width="stretch")

with st.expander("Load stages"):
    st.dataframe(ex.stages(), hide_index=True, width="stretch")
