"""Analysis tools reproducing the paper's statistics."""
