"""Writing JSON results of the command-line tools (through ``safe_write``:
whole or not at all, checked, never over a file the project did not write)."""
from ppdet_hambox.utils import safe_write

__all__ = ['write_json']


def write_json(path, obj, indent=1):
    """Write ``obj`` to ``path`` (its folder created if missing); returns ``path``."""
    return safe_write.write_json(path, obj, indent=indent)
