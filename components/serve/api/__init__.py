"""HTTP front and protocols: FastAPI routes, the ASGI fast path, the Open Inference
Protocol, request and response models, bearer tokens."""
