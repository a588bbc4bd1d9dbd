"""Similar: an image and its nearest neighbours; the URL carries the query and the neighbour count (``n``)."""
import streamlit as st

import ui

ex = ui.explorer()
model = ui.pick_model(ex, purpose="neighbours")
algo = ui.pick_algorithm(ex, model)
st.title("Similar cars")
NEIGHBOURS, DEFAULT_K = (4, 8, 12, 16, 20), 12
# in the sidebar, drawn before the search box: a search that finds nothing stops the page, and a widget
# missing from a run loses its value (the count came back as 4, the slider's first stop, after a bad ID)
ui.follow_url("n_neighbours", "n", lambda raw: ui.url_choice("n", NEIGHBOURS, DEFAULT_K))
k = st.sidebar.select_slider("Neighbours", NEIGHBOURS, key="n_neighbours")
ui.to_url("n_neighbours", "n", None if k == DEFAULT_K else str(k))  # the link carries the count
ui.follow_url("own_frames", "frames", lambda raw: raw == "1")
st.sidebar.toggle("Show the query's own frames", key="own_frames",
                  help="Near-identical frames of the same pass (its near-duplicate group) are hidden by default: "
                       "they are the same photo, not a similar car. Other groups show once, with their count.")
ui.to_url("own_frames", "frames", "1" if st.session_state["own_frames"] else None)
image_id = ui.pick_image(ex)  # the URL's image= is what was typed, shown or not (a warning says why not)

info = ex.image(image_id)
q1, q2 = st.columns([1, 3])
with q1:
    ui.picture(ex.thumbnails([image_id])[image_id], f"query #{image_id}")
with q2:
    st.markdown(f"**Vehicle** `{info['vehicle_id']}` · **path** `{info['path']}` · "
                f"**cluster** {ex.assignment(model, image_id, algo)} under {model} ({algo}) · "
                f"[on the map →](/clusters?model={model}&algo={algo}&image={image_id})")
    st.caption("Share this page's URL to show the same query. 'search from here' makes a neighbour the query "
               "in this tab; clicking a picture opens its own similar page in a new tab.")

nb = ex.similar(model, image_id, k, algorithm=algo, own_group=st.session_state["own_frames"])
frames = ex.duplicate_group(image_id)
st.subheader(f"{len(nb)} nearest under {model}")
if len(frames) > 1:
    st.caption(f"The query is one of {len(frames)} near-identical frames of one pass "
               f"({', '.join(f'#{i}' for i in frames[:8])}{'…' if len(frames) > 8 else ''}); "
               + ("they are listed." if st.session_state["own_frames"] else "they are hidden."))
caps = [f"#{r.image_id} · d={r.distance:.2f}" + (" · same vehicle" if r.vehicle_id == info["vehicle_id"] else "")
        + (" · own frame" if r.image_id in frames else "") for r in nb.itertuples()]
clicked = ui.gallery(ex, nb["image_id"], caps, model=model, buttons="search from here", copies=nb["copies"])
if clicked is not None:
    st.query_params["image"] = str(clicked)
    st.rerun()
