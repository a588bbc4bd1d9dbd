"""Metrics: cluster structure verdict, gap statistic and k-score curves, PCA explained variance."""
import altair as alt
import streamlit as st

import ui
from lib import reduce

ex = ui.explorer()
model = ui.pick_model(ex, purpose="groups")
info = ex.models().set_index("model").loc[model]
k = int(info["chosen_k"])
st.title(f"Metrics: {model}")
VERDICT = {"clear": ("Clear cluster structure", st.success), "weak": ("Weak cluster structure", st.warning),
           "none": ("No cluster structure", st.error)}
label, box = VERDICT.get(info["structure"], ("Cluster structure unknown", st.info))
box(f"**{label}** — chosen **k = {k}**, gap over one cluster **{info['gap_at_k']:.3f} ± {info['gap_se_at_k']:.3f}** "
    f"(distances: {info['metric']}).")
if isinstance(info["k_note"], str) and info["k_note"]:
    st.warning(f"**Note on k:** {info['k_note']}")
st.write("k is chosen by the **gap statistic** (Tibshirani, Walther & Hastie 2001): for every k, how much "
         "tighter KMeans makes the data than it makes structureless data spanning the same principal-component "
         "box (10 uniform draws, which also give the standard error). The **one-standard-error rule** takes the "
         "smallest k whose gap is within one standard error of the next k's. The verdict: *none* when no k "
         "beats one cluster (the rule says k = 1, or the gap is within 2 standard errors of 0), *weak* when the "
         "gain is small (under 0.1) or k is only the end of the range, *clear* otherwise. "
         "Silhouette, Davies–Bouldin and Calinski–Harabasz are shown but do not choose: a structureless cloud "
         "cut into cells scores well on them. Each fit runs on a random sample of "
         f"{int(info['sweep_sample_rows']):,} rows; silhouette on {int(info['silhouette_sample_rows']):,} of them.")

scores = ex.k_scores(model)
long = scores.melt(id_vars="k", var_name="score", value_name="value").dropna(subset=["value"])
titles = {"calinski_harabasz": "Calinski–Harabasz (raw)", "davies_bouldin": "Davies–Bouldin ↓",
          "silhouette": "Silhouette ↑", "inertia": "Inertia (all rows) ↓"}
# the gap, which chooses k, on its own; the four scores that do not choose in a 2 × 2 grid beside it
# (five panels in a grid of three left an empty sixth)
g = scores.dropna(subset=["gap"]).assign(lo=lambda d: d.gap - d.gap_se, hi=lambda d: d.gap + d.gap_se)
gap_x = alt.X("k:Q", title="k")
gap_chart = (alt.Chart(g).mark_area(opacity=0.25).encode(x=gap_x, y="lo:Q", y2="hi:Q")
             + alt.Chart(g).mark_line(point=True).encode(
                 x=gap_x, y=alt.Y("gap:Q", title="gap over one cluster ↑ (± SE)"),
                 tooltip=["k", alt.Tooltip("gap:Q", format=".4f"), alt.Tooltip("gap_se:Q", format=".4f")])
             + alt.Chart(g).mark_rule(color="red", strokeDash=[4, 3]).encode(x="k:Q")
             .transform_filter(f"datum.k == {k}")).properties(height=390, title="Gap statistic: chooses k")
long = long[long["score"].isin(titles)]
long["score"] = long["score"].map(titles)
base = alt.Chart(long).encode(x=alt.X("k:Q", title="k"))
line = base.mark_line(point=True).encode(y=alt.Y("value:Q", title=None, scale=alt.Scale(zero=False)),
                                         tooltip=["k", "score", alt.Tooltip("value:Q", format=".4g")])
rule = alt.Chart(long).mark_rule(color="red", strokeDash=[4, 3]).encode(x="k:Q").transform_filter(f"datum.k == {k}")
c1, c2 = st.columns([1, 1.6])
c1.altair_chart(gap_chart, width="stretch")
c2.altair_chart((line + rule).properties(width=200, height=150)
                .facet(facet=alt.Facet("score:N", title=None, sort=list(titles.values())), columns=2)
                .resolve_scale(y="independent"))
gaps = scores.dropna(subset=["gap"])[["k", "gap", "gap_se"]]
with st.expander("Gap values"):
    st.dataframe(gaps, hide_index=True, column_config={
        "gap": st.column_config.NumberColumn("gap over one cluster", format="%.4f"),
        "gap_se": st.column_config.NumberColumn("standard error", format="%.4f")})

algo = ui.pick_algorithm(ex, model)
if algo != "kmeans":
    sweep = ex.algorithm_sweep(model, algo)
    run = ex.algorithm_runs(model).set_index("algorithm").loc[algo]
    st.subheader(f"{algo}: sweep")
    st.write(f"Final fit on all rows: **{int(run['n_clusters'])} clusters**, noise {run['noise_share']:.1%}, "
             f"{run['seconds']:.1f} s; parameters `{run['params']}`. Sweep scored on "
             f"{int(sweep['sample_rows'].max()):,} random rows.")
    st.dataframe(sweep, hide_index=True, width="stretch")

parts = ex.combination_parts(model)
if len(parts):
    st.subheader("Combination")
    st.write("Each part's reduced vectors times its weight, concatenated; the weight is 1 / √(total variance "
             "of the part's block), so every part has total variance 1 and weighs the same.")
    st.dataframe(parts, hide_index=True)
    st.stop()

st.subheader("PCA explained variance")
curve = ex.pca_curve(model, max_components=max(200, 2 * int(info["pca_dim"])))
pca_dim = int(info["pca_dim"])
st.write(f"{int(info['dim'])} descriptor dims reduced to **{pca_dim}** components, keeping "
         f"**{info['explained_variance']:.1%}** of the variance (rule: fewest components reaching 90%, "
         "none below the noise floor (Gavish–Donoho threshold) where the components above it keep "
         f"{reduce.FLOOR_MIN_VARIANCE:.0%} of the variance, between 2 and 64).")
c = alt.Chart(curve).mark_line().encode(
    x=alt.X("component:Q"), y=alt.Y("cumulative:Q", title="cumulative explained variance", scale=alt.Scale(domain=[0, 1])),
    tooltip=["component", alt.Tooltip("cumulative:Q", format=".1%")])
r = alt.Chart(curve[curve.component == pca_dim]).mark_rule(color="red", strokeDash=[4, 3]).encode(x="component:Q")
st.altair_chart((c + r).properties(height=260), width="stretch")
