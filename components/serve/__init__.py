"""Online serving: the champion model behind a FastAPI app (see README.md)."""
