"""Dataset sources: WIDER FACE, other benchmarks, the demo dataset generator."""
