"""Vehicle-image cluster explorer: entry point and navigation."""
import streamlit as st

import ui

st.set_page_config(page_title="Vehicle cluster explorer", page_icon="🚗", layout="wide")
pages = [st.Page(path, title=title, url_path=url, default=(url == "overview"))
         for url, (path, title) in ui.PAGES.items()]
# navigation first, so that the page of a shared link is the one shown after signing in;
# hidden until then
page = st.navigation(pages, position="sidebar" if ui.signed_in() else "hidden")
ui.require_password()
ui.ensure_database()
page.run()
