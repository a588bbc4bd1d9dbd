"""Outliers: ranked, paged gallery per model (page in the URL)."""
import streamlit as st

import ui
from lib.queries import int_param

PER_PAGE = 24
ex = ui.explorer()
model = ui.pick_model(ex, extra=("consensus",))
st.title(f"Outliers: {model}")
st.caption("Rank 1 = most unusual. A model's score is the mean of the two highest percentiles among five detectors: distance to the "
           "10 nearest images (knn), local outlier factor (lof), distance to the cluster centre (centroid), "
           "IsolationForest (iforest) and distance from the other photos of the same vehicle (vehicle). "
           "'flagged by' names the detectors that put the image in their top 1%; for consensus, the models.")
n_pages = (ex.n_images + PER_PAGE - 1) // PER_PAGE
raw = st.query_params.get("page", "1")
page = int_param(raw, 1, n_pages, 1)
page = st.number_input("Page", 1, n_pages, page)
st.query_params["page"] = str(page)
df, total = ex.outliers(model, page, PER_PAGE)
st.write(f"Ranks {(page - 1) * PER_PAGE + 1:,}–{min(page * PER_PAGE, total):,} of {total:,}")
caps = [f"#{r.rank} · id {r.image_id} · {r.score:.3f}" + (f" · {r.flagged_by}" if r.flagged_by else "")
        for r in df.itertuples()]
ui.gallery(ex, df["image_id"], caps, model=ex.model_names()[0] if model == "consensus" else model)
