"""lakeray: end-to-end ML pipelines on Spark + Delta Lake + Ray."""

__version__ = "0.1.0"
