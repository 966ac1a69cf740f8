"""Streamlit front end: a thin layer over ``core`` (``streamlit run streamlit_app/app.py``)."""
