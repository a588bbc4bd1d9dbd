"""Compare: every model and combination side by side, the recommendation, one image under every model."""
import altair as alt
import streamlit as st

import ui

ex = ui.explorer()
st.title("Which model gives clusters a person can interpret?")
table = ex.compare()
best = table.iloc[0]
st.success(f"**Recommended: {best['model']}** — {best['rank_reason']}.")
st.caption("Rank = mean rank over three scores (README, 'Ranking'): same-vehicle recall@10 of the neighbours, "
           "vehicle consistency of the clusters (share of a vehicle's photos in its majority cluster) and stability "
           "(ARI of KMeans on bootstrap samples); ties go to the higher silhouette. Silhouette and Davies–Bouldin "
           "do not vote: a structureless Gaussian cut into many cells scores well on both.")
pct = dict(format="%.3f")
st.dataframe(table, hide_index=True, width="stretch", column_config={
    "rank": "rank", "parts": "combination of", "dim": "dims", "pca_dim": "reduced dims", "chosen_k": "k",
    "same_vehicle_recall": st.column_config.NumberColumn("same-vehicle recall@10 ↑", **pct),
    "vehicle_consistency": st.column_config.NumberColumn("vehicle consistency ↑", **pct),
    "stability_ari": st.column_config.NumberColumn("stability (ARI) ↑", **pct),
    "silhouette": st.column_config.NumberColumn("silhouette ↑", **pct),
    "davies_bouldin": st.column_config.NumberColumn("Davies–Bouldin ↓", format="%.2f"),
    "calinski_harabasz": st.column_config.NumberColumn("Calinski–Harabasz", format="%.0f"),
    "map_knn_preservation": st.column_config.NumberColumn("map 10-NN kept", format="%.2f"),
    "rank_reason": "why"})

st.subheader("Clustering algorithms")
runs = ex.algorithm_runs()
st.caption("Every algorithm ran on all rows; its k (or HDBSCAN's minimum cluster size) was chosen by a sweep "
           "scored on a random sample. Scores on the same sample as the table above; noise rows left out.")
st.dataframe(runs[["model", "algorithm", "n_clusters", "noise_share", "silhouette", "davies_bouldin",
                   "calinski_harabasz", "vehicle_consistency", "seconds", "params"]],
             hide_index=True, width="stretch", column_config={
                 "n_clusters": "clusters", "noise_share": st.column_config.NumberColumn("noise", format="percent"),
                 "silhouette": st.column_config.NumberColumn("silhouette ↑", **pct),
                 "davies_bouldin": st.column_config.NumberColumn("Davies–Bouldin ↓", format="%.2f"),
                 "calinski_harabasz": st.column_config.NumberColumn("Calinski–Harabasz", format="%.0f"),
                 "vehicle_consistency": st.column_config.NumberColumn("vehicle consistency", **pct),
                 "seconds": st.column_config.NumberColumn("seconds", format="%.1f")})

st.subheader("Do the models agree?")
agree = ex.agreement()
measure = st.radio("Measure", ["ari", "nmi", "knn_overlap"], horizontal=True,
                   format_func={"ari": "ARI of the clusterings", "nmi": "NMI of the clusterings",
                                "knn_overlap": "shared 10 nearest neighbours"}.get)
order = list(table["model"])
st.altair_chart(alt.Chart(agree).mark_rect().encode(
    x=alt.X("model_a:N", sort=order, title=None), y=alt.Y("model_b:N", sort=order, title=None),
    color=alt.Color(f"{measure}:Q", scale=alt.Scale(domain=[0, 1], scheme="blues"), title=measure),
    tooltip=["model_a", "model_b", alt.Tooltip("ari:Q", format=".3f"), alt.Tooltip("nmi:Q", format=".3f"),
             alt.Tooltip("knn_overlap:Q", format=".3f")]).properties(height=60 + 40 * len(order)), width="stretch")

st.subheader("One image under every model")
image_id = ui.pick_image(ex, "; the URL carries it")
info = ex.image(image_id)
q, rest = st.columns([1, 5])
ui.picture(ex.thumbnails([image_id])[image_id], f"query #{image_id}", where=q)
rest.markdown(f"Vehicle `{info['vehicle_id']}`. Each row: the 6 nearest under that model; "
              "★ marks a photo of the same vehicle.")
for model in order:
    nb = ex.similar(model, image_id, 6)
    same = int((nb["vehicle_id"] == info["vehicle_id"]).sum())
    st.markdown(f"**{model}** — cluster {ex.assignment(model, image_id)}, {same} of {len(nb)} same vehicle")
    ui.gallery(ex, nb["image_id"], [f"#{r.image_id}" + (" ★" if r.vehicle_id == info["vehicle_id"] else "")
                                    for r in nb.itertuples()], model=model, columns=6)
