"""WIDER FACE ground-truth readers, WIDERFaceDataset and ImageFolder."""
import importlib.util
import json

import numpy as np
import pytest

from ppdet_hambox.core.errors import run_tool
from ppdet_hambox.data.source.image_folder import ImageFolder
from ppdet_hambox.data.source.widerface import (WIDERFaceDataset, WiderAnnotationError, main,
                                                read_wider_mat, read_wider_txt)

GOOD_HEAD = ['0--Parade/a.jpg', '2', '10 20 30 40 0 0 0 0 0 0 ', '5 5 0 10 0 0 0 0 0 0 ']


def write(tmp_path, lines, name='gt.txt'):
    path = tmp_path / name
    path.write_text('\n'.join(lines) + '\n')
    return str(path)


@pytest.mark.parametrize('split,images,faces,valid', [
    ('train', 12880, 159393, 156994),
    ('val', 3226, 39697, 39112),
])
def test_real_files_counts(shared_data, split, images, faces, valid):
    path = shared_data / 'widerface' / 'wider_face_{}_bbx_gt.txt'.format(split)
    annotation = read_wider_txt(path)
    assert annotation.summary() == {'images': images, 'faces': faces, 'valid_faces': valid}
    assert len(annotation.offsets) == images + 1 and annotation.boxes.dtype == np.float32


def test_parse_benchmark_tool_reports_counts_and_time(tmp_path, repo_root, capsys):
    """Parsing speed is measured by tools/benchmark_annotations.py, not asserted here."""
    spec = importlib.util.spec_from_file_location('bench_anno', repo_root / 'tools' / 'benchmark_annotations.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    results = tool.main([write(tmp_path, GOOD_HEAD), '--repeats', '2'])
    assert len(results) == 1 and results[0]['images'] == 1 and results[0]['faces'] == 1
    assert results[0]['seconds'] > 0 and json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == results


def test_cli_prints_json_last_line(shared_data, capsys):
    assert main([str(shared_data / 'widerface' / 'wider_face_val_bbx_gt.txt')]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last) == {'images': 3226, 'faces': 39697, 'valid_faces': 39112}


def test_cli_reports_bad_file(tmp_path, capsys):
    assert run_tool(main, [write(tmp_path, ['a.jpg', 'x'])]) == 2  # as python -m runs it
    assert 'gt.txt:2' in capsys.readouterr().err


def test_val_mat_matches_val_txt(shared_data):
    mat = read_wider_mat(shared_data / 'widerface' / 'wider_face_val.mat')
    txt = read_wider_txt(shared_data / 'widerface' / 'wider_face_val_bbx_gt.txt')
    assert mat.summary() == txt.summary()
    txt_rows = {f: (txt.offsets[i], txt.offsets[i + 1]) for i, f in enumerate(txt.files)}
    assert sorted(txt_rows) == sorted(mat.files)
    order = np.concatenate([np.arange(*txt_rows[f]) for f in mat.files])
    np.testing.assert_array_equal(mat.boxes[mat.positive_size()], txt.boxes[order][mat.positive_size()])
    np.testing.assert_array_equal(mat.invalid(), txt.invalid()[order])


def test_zero_face_images_both_conventions(tmp_path):
    lines = ['e/train_style.jpg', '0', '0 0 0 0 0 0 0 0 0 0 ',
             'e/val_style.jpg', '1', '0 0 0 0 0 0 0 0 0 0 ',
             'e/no_zero_line.jpg', '0',
             'e/one.jpg', '1', '1 2 3 4 0 0 0 1 0 0']
    annotation = read_wider_txt(write(tmp_path, lines))
    assert annotation.files == ['e/train_style.jpg', 'e/val_style.jpg', 'e/no_zero_line.jpg', 'e/one.jpg']
    assert list(np.diff(annotation.offsets)) == [0, 1, 0, 1]
    assert annotation.summary() == {'images': 4, 'faces': 1, 'valid_faces': 0}
    np.testing.assert_array_equal(annotation.boxes[-1], [1, 2, 4, 6])


@pytest.mark.parametrize('lines,line,words', [
    (GOOD_HEAD + ['b.jpg', '1', '1 2 x 4 0 0 0 0 0 0'], 7, 'non-numeric'),
    (GOOD_HEAD + ['b.jpg', '1', '1 2 3 4 0 0 0'], 7, 'expected 10 numbers'),
    (GOOD_HEAD + ['b.jpg', '3', '1 2 3 4 0 0 0 0 0 0'], 6, 'runs past the end'),
    (GOOD_HEAD + ['b.jpg', 'two', '1 2 3 4 0 0 0 0 0 0'], 6, 'face count'),
    (GOOD_HEAD + ['b.jpg'], 5, 'no face count'),
])
def test_annotation_errors_name_file_and_line(tmp_path, lines, line, words):
    path = write(tmp_path, lines)
    with pytest.raises(WiderAnnotationError) as info:
        read_wider_txt(path)
    assert str(info.value).startswith('{}:{}:'.format(path, line))
    assert words in str(info.value)
    assert info.value.line == line


def test_dataset_records_filter_invalid_and_empty(tmp_path):
    lines = ['0--Parade/0_a.jpg', '3', '10 20 30 40 0 0 0 0 0 0', '50 60 10 10 0 0 0 1 0 0',
             '5 5 0 10 0 0 0 0 0 0', '1--Handshaking/1_b.jpg', '0', '0 0 0 0 0 0 0 0 0 0']
    write(tmp_path, lines, 'wider_face_train_bbx_gt.txt')
    dataset = WIDERFaceDataset(dataset_dir=str(tmp_path), image_dir='imgs',
                               anno_path='wider_face_train_bbx_gt.txt')
    assert len(dataset) == 2
    record = dataset[0]
    assert record['im_file'] == str(tmp_path / 'imgs' / '0--Parade' / '0_a.jpg')
    assert (record['event'], record['name'], record['im_id']) == ('0--Parade', '0_a', 0)
    np.testing.assert_array_equal(record['gt_bbox'], [[10, 20, 40, 60]])
    assert record['gt_bbox'].dtype == np.float32 and record['gt_ignore'].dtype == bool
    assert not record['gt_ignore'].any()
    assert dataset[1]['gt_bbox'].shape == (0, 4) and dataset[1]['gt_ignore'].shape == (0,)
    keep = WIDERFaceDataset(dataset_dir=str(tmp_path), image_dir='imgs',
                            anno_path='wider_face_train_bbx_gt.txt', keep_invalid=True)
    np.testing.assert_array_equal(keep[0]['gt_bbox'], [[10, 20, 40, 60], [50, 60, 60, 70]])
    np.testing.assert_array_equal(keep[0]['gt_ignore'], [False, True])
    assert len(WIDERFaceDataset(dataset_dir=str(tmp_path), image_dir='imgs',
                                anno_path='wider_face_train_bbx_gt.txt', sample_num=1)) == 1


def test_dataset_reads_val_mat(shared_data):
    dataset = WIDERFaceDataset(dataset_dir=str(shared_data / 'widerface'), image_dir='images',
                               anno_path='wider_face_val.mat', keep_invalid=True)
    assert len(dataset) == 3226
    assert sum(len(dataset[i]['gt_bbox']) for i in range(len(dataset))) == 39697


def test_dataset_missing_annotation_named(tmp_path):
    dataset = WIDERFaceDataset(dataset_dir=str(tmp_path), anno_path='nope.txt')
    with pytest.raises(WiderAnnotationError, match='nope.txt'):
        len(dataset)


def test_image_folder(tmp_path):
    (tmp_path / 'sub').mkdir()
    for name in ['b.jpg', 'a.PNG', 'sub/c.jpeg', 'notes.txt']:
        (tmp_path / name).write_bytes(b'x')
    folder = ImageFolder(dataset_dir=str(tmp_path))
    files = [folder[i]['im_file'] for i in range(len(folder))]
    assert files == [str(tmp_path / 'a.PNG'), str(tmp_path / 'b.jpg'), str(tmp_path / 'sub' / 'c.jpeg')]
    assert folder[2]['event'] == 'sub' and folder[2]['name'] == 'c' and folder[0]['event'] == ''
    assert folder[0]['gt_bbox'].shape == (0, 4)
    assert len(ImageFolder(dataset_dir=str(tmp_path), recursive=False)) == 2
    single = ImageFolder(dataset_dir=str(tmp_path), image_dir='b.jpg')
    assert len(single) == 1 and single[0]['name'] == 'b'
    folder.set_images([str(tmp_path / 'sub' / 'c.jpeg')])
    assert len(folder) == 1
    with pytest.raises(FileNotFoundError, match='missing'):
        len(ImageFolder(dataset_dir=str(tmp_path), image_dir='missing'))
    with pytest.raises(FileNotFoundError, match='set_images'):
        len(ImageFolder())


@pytest.mark.parametrize('content', [b'x\n', b'MATLAB 5.0 MAT-file' + b'\x00' * 20])
def test_a_mat_file_that_is_not_one_names_the_file(tmp_path, content):
    path = tmp_path / 'wider_face_val.mat'
    path.write_bytes(content)
    with pytest.raises(WiderAnnotationError, match='wider_face_val.mat.*cannot read as a MATLAB file'):
        read_wider_mat(path)


def test_a_mat_file_of_another_layout_names_the_file(tmp_path):
    import scipy.io
    path = tmp_path / 'wider_face_val.mat'
    scipy.io.savemat(str(path), {'event_list': np.zeros((2, 3)), 'file_list': 1.0, 'face_bbx_list': 'x'})
    with pytest.raises(WiderAnnotationError, match='wider_face_val.mat.*not laid out as wider_face_val.mat'):
        read_wider_mat(path)
