"""Data collection: every silo of a pipeline spec into one bronze Delta table per source."""

from lakeray.ingest.run import IngestResult, run_ingest

__all__ = ["IngestResult", "run_ingest"]
