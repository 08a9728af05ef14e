"""MRI Insight: the entry file only routes (st.navigation over the pages)."""

import streamlit as st

st.set_page_config(page_title="MRI Insight", page_icon="🧠", layout="wide")

pages = st.navigation(
    {
        "MRI Insight": [st.Page("pages/home.py", title="Home", icon="🏠", default=True)],
        "Read a scan": [
            st.Page("pages/predict.py", title="Upload & predict", icon="🔎", url_path="predict"),
            st.Page("pages/mask.py", title="Tumour mask", icon="✏️", url_path="mask"),
        ],
        "Models": [
            st.Page("pages/compare.py", title="Model comparison", icon="📊", url_path="compare"),
            st.Page("pages/activations.py", title="Activation viewer", icon="🧩", url_path="activations"),
        ],
    }
)
pages.run()
