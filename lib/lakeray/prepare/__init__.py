"""Data preparation: bronze -> silver (typed, clean, deduplicated) -> gold (joined, split)."""

from lakeray.prepare.run import PrepareResult, run_prepare

__all__ = ["PrepareResult", "run_prepare"]
