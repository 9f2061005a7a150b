"""Seconds to parse WIDER FACE annotation files (JSON on the last line).

    python tools/benchmark_annotations.py FILE [FILE ...] [--repeats 3]

Times ``read_wider_txt`` / ``read_wider_mat`` (best of ``--repeats``) and
prints, per file, its image and face counts, the best time and faces per
second. The full train file (12,880 images, 159,393 faces) parses in about
0.7 s (best of 3, one process, shared 2-core machine); a timing is a
benchmark, not a test.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppdet_hambox.utils.logger import quiet_paddle  # noqa: E402
quiet_paddle()  # before anything imports paddle; HAMBOX_PADDLE_LOG=1 keeps its logging
from ppdet_hambox.core.errors import UserError, run_tool  # noqa: E402
from ppdet_hambox.data.source.widerface import read_wider_annotation  # noqa: E402
from ppdet_hambox.utils.cli import ToolParser, existing_file, positive_int  # noqa: E402


def time_file(path, repeats):
    """``{file, images, faces, valid_faces, seconds (best), faces_per_second}``."""
    best, summary = float('inf'), None
    for _ in range(repeats):
        start = time.perf_counter()
        summary = read_wider_annotation(path).summary()
        best = min(best, time.perf_counter() - start)
    return dict(summary, file=path, seconds=round(best, 4),
                faces_per_second=round(summary['faces'] / max(best, 1e-9)))


def main(argv=None):
    parser = ToolParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('files', nargs='+', type=existing_file, help='wider_face_*_bbx_gt.txt or wider_face_val.mat')
    parser.add_argument('--repeats', type=positive_int, default=3)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        raise UserError('--repeats must be at least 1, got {}'.format(args.repeats))
    for path in args.files:
        if not os.path.isfile(path):
            raise UserError('no such annotation file: {}'.format(path))
    results = [time_file(path, args.repeats) for path in args.files]
    for r in results:
        print('{file}: {images} images, {faces} faces in {seconds:.3f} s ({faces_per_second} faces/s)'.format(**r))
    print(json.dumps(results))
    return results


if __name__ == '__main__':
    sys.exit(run_tool(main))
