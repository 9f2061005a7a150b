"""HAMBox face detection in PaddlePaddle."""

__version__ = '0.1.0'
