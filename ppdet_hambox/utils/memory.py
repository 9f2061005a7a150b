"""Peak memory and honest timing of a stretch of code, on any device.

- Host: the peak resident set size (RSS). On Linux the kernel's high-water
  mark ``VmHWM`` is reset through ``/proc/self/clear_refs`` at the start, so
  the peak is that of the stretch alone; elsewhere it is the process's
  lifetime peak (``resource.getrusage``), which only grows.
- Device: on an accelerator, ``paddle.device.max_memory_allocated`` after
  ``reset_max_memory_allocated`` (None on a CPU, whose tensors are host RSS).
- ``synchronize()`` waits for queued device work (a no-op on a CPU), so a
  wall-clock stage time is the stage's and not the one before it.
"""
import os
import resource
import sys

import paddle

__all__ = ['PeakMemory', 'synchronize', 'on_accelerator', 'host_peak_is_reset']

GB = float(1 << 30)
_STATUS = '/proc/self/status'
_CLEAR_REFS = '/proc/self/clear_refs'


def on_accelerator():
    """True when tensors live in a device's own memory (not a CPU)."""
    return not paddle.device.get_device().startswith('cpu')


def synchronize():
    if on_accelerator():
        paddle.device.synchronize()


def host_peak_is_reset():
    """True when the host peak can be reset (Linux ``clear_refs``)."""
    return os.access(_CLEAR_REFS, os.W_OK) and os.path.exists(_STATUS)


def _reset_host_peak():
    if host_peak_is_reset():
        with open(_CLEAR_REFS, 'w') as f:
            f.write('5')


def _host_peak_bytes():
    if os.path.exists(_STATUS):
        with open(_STATUS) as f:
            for line in f:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == 'darwin' else peak * 1024  # macOS reports bytes, Linux KiB


def _device_peak(reset):
    if not on_accelerator():
        return None
    try:
        if reset:
            paddle.device.reset_max_memory_allocated()
            return None
        return paddle.device.max_memory_allocated()
    except (ValueError, RuntimeError, AttributeError):  # a build without memory statistics
        return None


class PeakMemory:
    """``with PeakMemory() as peak: ...`` then ``peak.host_gb`` / ``peak.device_gb``
    (None on a CPU); reading inside the block gives the peak so far."""

    def __enter__(self):
        synchronize()
        _reset_host_peak()
        _device_peak(reset=True)
        self._host = self._device = None
        return self

    def __exit__(self, *exc):
        synchronize()
        self._host = _host_peak_bytes()
        self._device = _device_peak(reset=False)
        return False

    @property
    def host_gb(self):
        return (self._host if self._host is not None else _host_peak_bytes()) / GB

    @property
    def device_gb(self):
        value = self._device if self._host is not None else _device_peak(reset=False)
        return None if value is None else value / GB
