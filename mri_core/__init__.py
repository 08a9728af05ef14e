"""MRI Insight core: reading, preprocessing, models, inference and measurement.

Nothing in this package imports Streamlit; the pages in ``views/`` are thin views on it.
"""

__version__ = "0.1.0"
