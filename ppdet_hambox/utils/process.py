"""Processes that end with their parent.

``die_with_parent`` asks the Linux kernel (``prctl(PR_SET_PDEATHSIG)``) to
kill the calling process when its parent dies, however the parent dies
(``kill -9``, the OOM killer, a preemption). ``guarded(command)`` wraps a
``python SCRIPT ...`` or ``python -m MODULE ...`` command line so that the
child makes that call itself before running the script or module: no
``preexec_fn``, which is unsafe in a multi-threaded parent such as one
running Paddle. Elsewhere (macOS, Windows)
there is no such call and a child may outlive its parent.

    python -m ppdet_hambox.utils.process PARENT_PID (SCRIPT | -m MODULE) [ARGS...]
"""
import ctypes
import ctypes.util
import os
import runpy
import signal
import sys

__all__ = ['die_with_parent', 'guarded']

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent_pid, sig=signal.SIGKILL):
    """Have the kernel send ``sig`` to this process when its parent dies
    (Linux only; returns False elsewhere or if the call fails). A parent
    that already died before the call (this process was re-parented) ends
    this process at once."""
    if not sys.platform.startswith('linux'):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library('c') or None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        return False
    if os.getppid() != parent_pid:
        os._exit(1)
    return True


def guarded(command):
    """``[python, script | -m module, *args]`` -> the same run, ended when this
    process dies."""
    python, *rest = command
    return [python, '-m', __name__, str(os.getpid())] + list(rest)


def main(argv):
    parent_pid, target, *args = argv
    die_with_parent(int(parent_pid))
    if target == '-m':
        module, *args = args
        sys.argv = [module] + args
        runpy.run_module(module, run_name='__main__', alter_sys=True)
    else:
        sys.argv = [target] + args
        sys.path.insert(0, os.path.dirname(os.path.abspath(target)))
        runpy.run_path(target, run_name='__main__')


if __name__ == '__main__':
    main(sys.argv[1:])
