"""Ray Serve: the champion model behind a FastAPI ingress, with batching and an inference log."""
