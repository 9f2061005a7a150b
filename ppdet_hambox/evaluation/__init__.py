"""Evaluation: test-time protocols, the predictor, prediction folders,
benchmarks and inference on image folders."""
