"""digitvae export: checkpoint -> ONNX graphs, manifest, parity fixtures (needs [train])."""
