"""ResNet backbone: shapes, freezing, norms and loading pretrained weights."""
import logging
import math

import numpy as np
import paddle
import pytest
from paddle.vision.models import resnet18

from ppdet_hambox.modeling.backbones.norm import FrozenBatchNorm2D
from ppdet_hambox.modeling.backbones.resnet import ResNet
from ppdet_hambox.modeling.shape_spec import ShapeSpec
from ppdet_hambox.utils.weights import WeightsError

EXPANSION = {18: 1, 34: 1, 50: 4, 101: 4}
BLOCKS = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3]}


@pytest.mark.parametrize('depth', [18, 34, 50, 101])
def test_shapes_and_strides(depth):
    paddle.seed(0)
    net = ResNet(depth=depth, width_mult=0.125)
    height, width = 67, 45
    feats = net(paddle.randn([2, 3, height, width]))
    assert [len(getattr(net, 'layer{}'.format(i))) for i in range(1, 5)] == BLOCKS[depth]
    assert net.out_shape == [ShapeSpec(8 * EXPANSION[depth] * 2 ** i, 4 * 2 ** i) for i in range(4)]
    for feat, (channels, stride) in zip(feats, net.out_shape):
        assert list(feat.shape) == [2, channels, math.ceil(height / stride), math.ceil(width / stride)]


def _grads_after_backward(net):
    net.train()
    sum(f.mean() for f in net(paddle.randn([2, 3, 32, 32]))).backward()
    # Paddle keeps BN running statistics as parameters that never get gradients
    return {name: p.grad for name, p in net.named_parameters() if not name.endswith(('_mean', '_variance'))}


def test_freeze_at_stops_gradients():
    net = ResNet(depth=18, width_mult=0.125, freeze_at=2)
    grads = _grads_after_backward(net)
    frozen = [n for n in grads if n.startswith(('conv1', 'bn1', 'layer1', 'layer2'))]
    trainable = [n for n in grads if n.startswith(('layer3', 'layer4'))]
    assert frozen and trainable
    assert all(grads[n] is None for n in frozen)
    assert all(grads[n] is not None for n in trainable)
    # frozen stages use frozen BN, so their normalisation holds no parameters
    assert isinstance(net.layer2[0].bn1, FrozenBatchNorm2D)
    assert isinstance(net.layer3[0].bn1, paddle.nn.BatchNorm2D)


def test_freeze_at_zero_freezes_stem_only():
    net = ResNet(depth=18, width_mult=0.125, freeze_at=0)
    grads = _grads_after_backward(net)
    assert grads['conv1.weight'] is None
    assert grads['layer1.0.conv1.weight'] is not None


def test_frozen_bn_stays_frozen():
    paddle.seed(1)
    net = ResNet(depth=18, width_mult=0.125, norm_type='frozen_bn')
    assert not any('bn' in n or 'downsample.1' in n for n, _ in net.named_parameters())
    before = {k: v.numpy().copy() for k, v in net.state_dict().items() if '_mean' in k or '_variance' in k}
    x = paddle.randn([2, 3, 32, 32]) * 3 + 1
    net.train()
    train_out = net(x)[-1].numpy()
    net.eval()
    eval_out = net(x)[-1].numpy()
    after = net.state_dict()
    assert all(np.array_equal(before[k], after[k].numpy()) for k in before)
    np.testing.assert_allclose(train_out, eval_out, rtol=1e-5, atol=1e-6)


def test_trainable_bn_moves_its_statistics():
    net = ResNet(depth=18, width_mult=0.125, norm_type='bn')
    net.train()
    net(paddle.randn([2, 3, 32, 32]) * 3 + 1)
    assert not np.allclose(net.bn1._mean.numpy(), 0.0)


def test_sync_bn_builds_and_runs_on_this_device():
    net = ResNet(depth=18, width_mult=0.125, norm_type='sync_bn')
    assert len(net(paddle.randn([1, 3, 32, 32]))) == 4


@pytest.mark.parametrize('kwargs', [{'depth': 20}, {'norm_type': 'gn'}, {'freeze_at': 5}, {'width_mult': 0}])
def test_bad_arguments_are_rejected(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        ResNet(**kwargs)


@pytest.fixture(scope='module')
def vision_resnet18(tmp_path_factory):
    """A paddle.vision ResNet-18 (random weights, moved statistics) saved as .pdparams."""
    paddle.seed(2)
    model = resnet18(pretrained=False)
    for name, tensor in model.state_dict().items():
        if name.endswith('_mean'):
            tensor.set_value(paddle.randn(tensor.shape) * 0.1)
        elif name.endswith('_variance'):
            tensor.set_value(paddle.rand(tensor.shape) + 0.5)
    path = tmp_path_factory.mktemp('weights') / 'resnet18.pdparams'
    paddle.save(model.state_dict(), str(path))
    model.eval()
    return model, path


def test_loads_paddle_vision_weights_and_computes_the_same(vision_resnet18, caplog):
    model, path = vision_resnet18
    with caplog.at_level(logging.INFO):
        net = ResNet(depth=18, pretrained=str(path))
    assert 'fc.weight' in caplog.text  # the classifier is reported unused
    net.eval()
    x = paddle.randn([1, 3, 64, 64])
    ref = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    ref = model.layer4(model.layer3(model.layer2(model.layer1(ref))))
    np.testing.assert_allclose(net(x)[-1].numpy(), ref.numpy(), rtol=1e-4, atol=1e-5)


def test_loads_into_frozen_bn(vision_resnet18):
    model, path = vision_resnet18
    net = ResNet(depth=18, norm_type='frozen_bn', freeze_at=4, pretrained=str(path))
    np.testing.assert_array_equal(net.layer2[1].bn2._variance.numpy(),
                                  model.layer2[1].bn2._variance.numpy())


def test_missing_pretrained_file_is_a_clear_error(tmp_path):
    missing = tmp_path / 'nope.pdparams'
    with pytest.raises(WeightsError, match='nope.pdparams'):
        ResNet(depth=18, width_mult=0.125, pretrained=str(missing))


def test_width_mismatch_is_an_error(vision_resnet18):
    _, path = vision_resnet18
    with pytest.raises(WeightsError, match=r'width_mult=0.5\): 100 shape mismatches, e.g. bn1._mean: file \[64\] vs model \[32\]'):
        ResNet(depth=18, width_mult=0.5, pretrained=str(path))


def test_file_with_no_fitting_key_is_an_error(tmp_path):
    path = tmp_path / 'other.pdparams'
    paddle.save({'encoder.weight': paddle.zeros([3, 3])}, str(path))
    with pytest.raises(WeightsError, match='no parameter'):
        ResNet(depth=18, width_mult=0.125, pretrained=str(path))


def test_partial_file_loads_and_reports_missing_keys(vision_resnet18, tmp_path, caplog):
    model, _ = vision_resnet18
    partial = {k: v for k, v in model.state_dict().items() if not k.startswith('layer4')}
    path = tmp_path / 'partial.pdparams'
    paddle.save(partial, str(path))
    with caplog.at_level(logging.WARNING):
        net = ResNet(depth=18, pretrained=str(path))
    assert 'layer4.' in caplog.text and 'lack' in caplog.text
    np.testing.assert_array_equal(net.layer3[0].conv1.weight.numpy(), model.layer3[0].conv1.weight.numpy())
