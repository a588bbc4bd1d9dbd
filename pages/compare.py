"""Compare: every model and combination side by side, the two recommendations, degenerate runs, one image under every model."""
import altair as alt
import streamlit as st

import ui

ex = ui.explorer()
st.title("Which model gives clusters a person can interpret?")
table = ex.compare()
MEASURES = {"ari": "ARI of the clusterings", "nmi": "NMI of the clusterings",
            "knn_overlap": "shared 10 nearest neighbours"}
DEFAULT_MEASURE = "ari"
# up here, so a bad link's warning is seen
ui.follow_url("agree_measure", "measure", lambda raw: ui.url_choice("measure", list(MEASURES), DEFAULT_MEASURE))
pct = dict(format="%.3f")


def leaders(col):
    """The models ranked 1 (several when tied)."""
    return table[table[col] == 1]


st.subheader("Two questions, two answers")
left, right = st.columns(2)
top = leaders("rank_neighbours")
left.success(f"**Best for finding the same vehicle: {' and '.join(top['model'])}**"
             + (" (a tie)" if len(top) > 1 else "") + f" — {top['rank_neighbours_reason'].iloc[0]}.")
left.caption("From the neighbours alone: same-vehicle recall@10, the share of a photo's other photos of the "
             "same vehicle among its 10 nearest.")
top = leaders("rank_groups")
if len(top):
    right.success(f"**Most interpretable groups: {' and '.join(top['model'])}**"
                  + (" (a tie)" if len(top) > 1 else "") + f" — {top['rank_groups_reason'].iloc[0]}.")
else:
    right.error("**No model is recommended for groups**: none has cluster structure (the gap rule found no k "
                "better than one cluster).")
right.caption("From the clusters: vehicle consistency corrected for chance (κ: 0 = what random clusters of the "
              "same sizes give, 1 = every vehicle's photos together), stability (mean ARI of 5 resampled fits), "
              "separation (silhouette) and, with pictures, agreement with the measured colour (NMI); the mean "
              "rank decides, ties stay ties. A model with no cluster structure is never recommended here.")

st.caption("Every score of every model: scroll the table sideways; the model column stays in place.")
st.dataframe(table.drop(columns=["dim", "pca_dim"]), hide_index=True, width="stretch", column_config={
    "model": st.column_config.TextColumn("model", pinned=True),
    "rank_groups": st.column_config.NumberColumn("groups rank", help="1 = most interpretable groups; none = no model has structure"),
    "rank_neighbours": st.column_config.NumberColumn("same-vehicle rank", help="1 = best neighbour recall"),
    "parts": "combination of", "metric": "distance", "structure": "structure", "chosen_k": "k",
    "gap_at_k": st.column_config.NumberColumn("gap ↑", format="%.3f", help="gap statistic at k over one cluster"),
    "gap_se_at_k": st.column_config.NumberColumn("± SE", format="%.3f"),
    "k_note": "note on k",
    "same_vehicle_recall": st.column_config.NumberColumn("same-vehicle recall@10 ↑", **pct),
    "vehicle_consistency": st.column_config.NumberColumn("consistency (raw)", **pct),
    "consistency_expected": st.column_config.NumberColumn("by chance", **pct),
    "consistency_kappa": st.column_config.NumberColumn("consistency κ ↑", **pct),
    "stability_ari": st.column_config.NumberColumn("stability (ARI) ↑", **pct),
    "color_nmi": st.column_config.NumberColumn("colour NMI ↑", **pct),
    "silhouette": st.column_config.NumberColumn("silhouette ↑", **pct),
    "davies_bouldin": st.column_config.NumberColumn("Davies–Bouldin ↓", format="%.2f"),
    "calinski_harabasz": st.column_config.NumberColumn("Calinski–Harabasz", format="%.0f"),
    "map_knn_preservation": st.column_config.NumberColumn("map 10-NN kept", format="%.2f"),
    "rank_groups_reason": "why (groups)", "rank_neighbours_reason": "why (same vehicle)"})

st.subheader("Clustering algorithms")
runs = ex.algorithm_runs()
bad = runs[runs["degenerate"].notna()]
st.caption("Every algorithm ran on all rows; its k (or HDBSCAN's minimum cluster size) was chosen by a sweep "
           "scored on a random sample. Scores on the same sample as the table above; noise rows left out. "
           "A run is **degenerate** when 90% or more of the rows are noise, one cluster holds 95% or more of the "
           "rest, there are fewer than two clusters, or about one cluster per point: it is kept here for the "
           "record but never offered as a model's clustering.")
for r in bad.itertuples():
    st.info(f"**{r.model} / {r.algorithm}: degenerate** — {r.degenerate}.", icon="⚠️")
st.dataframe(runs[["model", "algorithm", "degenerate", "n_clusters", "noise_share", "silhouette", "davies_bouldin",
                   "calinski_harabasz", "vehicle_consistency", "seconds", "params"]],
             hide_index=True, width="stretch", column_config={
                 "degenerate": "degenerate (why)",
                 "n_clusters": "clusters", "noise_share": st.column_config.NumberColumn("noise", format="percent"),
                 "silhouette": st.column_config.NumberColumn("silhouette ↑", **pct),
                 "davies_bouldin": st.column_config.NumberColumn("Davies–Bouldin ↓", format="%.2f"),
                 "calinski_harabasz": st.column_config.NumberColumn("Calinski–Harabasz", format="%.0f"),
                 "vehicle_consistency": st.column_config.NumberColumn("vehicle consistency", **pct),
                 "seconds": st.column_config.NumberColumn("seconds", format="%.1f")})

st.subheader("Do the models agree?")
agree = ex.agreement()
measure = st.radio("Measure", list(MEASURES), horizontal=True, key="agree_measure", format_func=MEASURES.get)
ui.to_url("agree_measure", "measure", None if measure == DEFAULT_MEASURE else measure)  # the link carries it
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
