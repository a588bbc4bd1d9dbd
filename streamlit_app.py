"""Vehicle-image cluster explorer: entry point and navigation."""
import streamlit as st

import ui

st.set_page_config(page_title="Vehicle cluster explorer", page_icon="🚗", layout="wide")
ui.require_password()
ui.ensure_database()
pages = [st.Page(path, title=title, url_path=url, default=(url == "overview"))
         for url, (path, title) in ui.PAGES.items()]
st.navigation(pages).run()
