"""What one inference costs: multiply-accumulates of the convolutions and
fully connected layers, and the parameters of the layers the eval graph runs
(training-only branches excluded), measured by one forward pass."""
import paddle

__all__ = ['model_cost']


def _layer_macs(layer, output):
    if isinstance(layer, paddle.nn.Conv2D):
        kernel = int(layer.weight.shape[1] * layer.weight.shape[2] * layer.weight.shape[3])
        return int(output.numel()) * kernel
    if isinstance(layer, paddle.nn.Linear):
        return int(output.numel()) * int(layer.weight.shape[0])
    return 0


@paddle.no_grad()
def model_cost(model, height=480, width=640):
    """``{'gmacs': float, 'params_m': float, 'height', 'width'}`` of ``model``'s
    eval network (``decoded``: backbone, neck, head, box decoding) on one
    ``height`` x ``width`` image."""
    leaves = [layer for layer in model.sublayers(include_self=True) if not layer.sublayers()]
    ran, macs = {}, [0]

    def hook(layer, _inputs, output):
        ran[id(layer)] = layer
        if isinstance(output, paddle.Tensor):
            macs[0] += _layer_macs(layer, output)

    handles = [layer.register_forward_post_hook(hook) for layer in leaves]
    was_training = model.training
    model.eval()
    try:
        model.decoded(paddle.zeros([1, 3, height, width], 'float32'))
    finally:
        for handle in handles:
            handle.remove()
        if was_training:
            model.train()
    params = sum(int(p.numel()) for layer in ran.values() for p in layer.parameters(include_sublayers=False))
    return {'gmacs': macs[0] / 1e9, 'params_m': params / 1e6, 'height': height, 'width': width}
