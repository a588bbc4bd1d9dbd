"""Similar: an image and its nearest neighbours; the URL carries the query."""
import streamlit as st

import ui

ex = ui.explorer()
model = ui.pick_model(ex)
algo = ui.pick_algorithm(ex, model)
st.title("Similar cars")
image_id = ui.pick_image(ex)
k = st.slider("Neighbours", 4, 20, 12, step=4)

info = ex.image(image_id)
q1, q2 = st.columns([1, 3])
with q1:
    ui.picture(ex.thumbnails([image_id])[image_id], f"query #{image_id}")
with q2:
    st.markdown(f"**Vehicle** `{info['vehicle_id']}` · **path** `{info['path']}` · "
                f"**cluster** {ex.assignment(model, image_id, algo)} under {model} ({algo})")
    st.caption("Share this page's URL to show the same query. 'search from here' makes a neighbour the query "
               "in this tab; clicking a picture opens its own similar page in a new tab.")

nb = ex.similar(model, image_id, k, algorithm=algo)
st.subheader(f"{len(nb)} nearest under {model}")
caps = [f"#{r.image_id} · d={r.distance:.2f}" + (" · same vehicle" if r.vehicle_id == info["vehicle_id"] else "")
        for r in nb.itertuples()]
clicked = ui.gallery(ex, nb["image_id"], caps, model=model, buttons="search from here")
if clicked is not None:
    st.query_params["image"] = str(clicked)
    st.rerun()
