"""MRI Insight: the entry file only routes (st.navigation over the pages)."""

import streamlit as st

st.set_page_config(page_title="MRI Insight", page_icon="🧠", layout="wide")

pages = st.navigation(
    {
        "MRI Insight": [st.Page("views/home.py", title="Home", icon=":material/home:", default=True)],
        "Read a scan": [
            st.Page("views/predict.py", title="Upload & predict", icon=":material/search:", url_path="predict"),
            st.Page("views/mask.py", title="Tumour mask", icon=":material/edit:", url_path="mask"),
        ],
        "Models": [
            st.Page("views/compare.py", title="Model comparison", icon=":material/bar_chart:", url_path="compare"),
            st.Page("views/activations.py", title="Activation viewer", icon=":material/layers:", url_path="activations"),
        ],
    }
)
pages.run()
