"""digitvae runtime: the three ONNX graphs on onnxruntime, with numpy; never torch."""
