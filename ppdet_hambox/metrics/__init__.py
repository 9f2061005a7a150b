"""Face-detection benchmark metrics (NumPy/SciPy only, no Paddle).

- ``widerface``: WIDER FACE easy/medium/hard AP, ``official`` (MATLAB) and
  ``python-port`` modes.
- ``coco_map``: COCO-style AP@[.50:.95] on WIDER FACE val (WIDER Challenge 2019).
- ``fddb``: FDDB discrete and continuous ROC.
- ``box_ap``: VOC AP at IoU 0.5 for plain box lists (AFW, PASCAL Face).

Computation only: the command line is ``tools/eval_metric.py`` (one
subcommand per metric), the curves are drawn by ``analysis.plotting``.
"""
