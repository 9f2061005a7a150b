"""The training loop and its parts: trainer, callbacks, EMA, distributed
environment, interruption, optimizer."""
