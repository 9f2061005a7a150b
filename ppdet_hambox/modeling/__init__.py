"""The detector: backbones, necks, heads, anchors, assigners, losses."""
