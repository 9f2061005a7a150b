"""Writing JSON results of the command-line tools."""
import json
import os

__all__ = ['write_json']


def write_json(path, obj, indent=1):
    """Write ``obj`` to ``path`` (its folder created if missing); returns ``path``."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(obj, f, indent=indent)
    return path
