"""digitvae training: the model and its training loop (needs the [train] extra)."""
