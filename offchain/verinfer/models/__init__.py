"""Model artifacts, the tensor codec and the ONNX runtime."""
