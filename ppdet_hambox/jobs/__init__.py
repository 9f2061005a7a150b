"""Whole jobs built from the other packages: the demo, train-then-evaluate,
the paper's ablation."""
