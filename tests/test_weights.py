"""Loading weights files: summaries and errors that name the file."""
import paddle
import pytest

from ppdet_hambox.utils.weights import WeightsError, load_weights


def small(out_features):
    return paddle.nn.Sequential(paddle.nn.Linear(2, 3), paddle.nn.Linear(3, out_features))


@pytest.fixture
def weights_file(tmp_path):
    path = tmp_path / 'w.pdparams'
    paddle.seed(1)
    paddle.save(small(1).state_dict(), str(path))
    return path


def test_summary_lists_loaded_missing_and_mismatched(weights_file):
    model = small(2)
    summary = load_weights(model, str(weights_file))
    assert summary['loaded'] == ['0.bias', '0.weight']
    assert summary['missing'] == ['1.bias', '1.weight']
    assert len(summary['mismatched']) == 2 and summary['unexpected'] == []
    saved = paddle.load(str(weights_file))
    assert paddle.allclose(model[0].weight, saved['0.weight']).item()


def test_strict_and_missing_file_errors(weights_file, tmp_path):
    with pytest.raises(WeightsError, match='does not fit Sequential exactly'):
        load_weights(small(2), str(weights_file), strict=True)
    with pytest.raises(WeightsError, match='weights file not found: .*nope'):
        load_weights(small(1), str(tmp_path / 'nope'))
    assert load_weights(small(1), str(weights_file)[:-len('.pdparams')])['missing'] == []


def test_nothing_fits_says_why(weights_file, tmp_path):
    with pytest.raises(WeightsError, match=r'w\.pdparams: every shared key has another shape'):
        load_weights(paddle.nn.Sequential(paddle.nn.Linear(5, 4), paddle.nn.Linear(4, 7)), str(weights_file))
    other = paddle.nn.Sequential(paddle.nn.Conv2D(1, 1, 1))
    other_path = tmp_path / 'conv.pdparams'
    paddle.save({'conv.w': paddle.zeros([1])}, str(other_path))
    with pytest.raises(WeightsError, match='no key is shared'):
        load_weights(other, str(other_path))
    garbage = tmp_path / 'garbage.pdparams'
    garbage.write_bytes(b'not a paddle file')
    with pytest.raises(WeightsError, match='cannot read weights file .*garbage'):
        load_weights(other, str(garbage))


def test_a_folder_given_as_weights_says_so(tmp_path):
    from ppdet_hambox.utils.weights import resolve_weights_path
    with pytest.raises(WeightsError, match='is a folder; give its .pdparams file'):
        resolve_weights_path(str(tmp_path))
