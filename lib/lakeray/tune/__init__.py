"""Model selection on Ray Tune."""
