"""The paper's statistics (anchor matching, mining) and training profiles."""
