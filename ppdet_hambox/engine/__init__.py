"""Training engine: trainer, callbacks, checkpoints, export."""
