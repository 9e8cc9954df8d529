"""The served model: the champion poller and its atomic swap, the compiled (ONNX)
predictor, heap trimming after a swap."""
