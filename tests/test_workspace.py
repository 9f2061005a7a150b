"""The registry and config system: inheritance, overrides, validation errors."""
import sys
import textwrap

import pytest

from ppdet_hambox.components import import_submodules
from ppdet_hambox.core.workspace import (ConfigError, build_component, build_component_list, create, load_config,
                                         parse_overrides, register, registered)


@register
class WsToyPart:
    __shared__ = ['num_classes']

    def __init__(self, ratio=1.0, sizes=(16, 32), num_classes=2, name_tag='part'):
        self.ratio, self.sizes, self.num_classes, self.name_tag = ratio, sizes, num_classes, name_tag


@register
class WsToyModel:
    __inject__ = ['part']
    __component_lists__ = ['ops']

    def __init__(self, part='WsToyPart', depth=1, ops=None, flag=False):
        self.part, self.depth, self.ops, self.flag = part, depth, ops, flag


@register
class WsToySource:
    def __init__(self, width=4):
        self.out_shape = [width, width * 2]


@register
class WsToySink:
    def __init__(self, in_shape, scale=1):
        self.in_shape, self.out_shape = in_shape, [c * scale for c in in_shape]


@register
class WsToyChain:
    __inject__ = ['source', 'middle', 'sink']
    __in_shape_from__ = {'middle': 'source', 'sink': 'middle'}

    def __init__(self, source='WsToySource', middle='WsToySink', sink='WsToySink'):
        self.source, self.middle, self.sink = source, middle, sink


def test_shapes_flow_from_part_to_part():
    chain = create('WsToyChain', {'WsToySource': {'width': 3}, 'WsToySink': {'scale': 10}})
    assert chain.middle.in_shape == [3, 6] and chain.sink.in_shape == [30, 60]
    inline = create('WsToyChain', {}, sink={'name': 'WsToySink', 'scale': 2})
    assert inline.sink.in_shape == [4, 8] and inline.sink.out_shape == [8, 16]
    assert create('WsToySink', {}, in_shape=[1]).in_shape == [1]
    with pytest.raises(ConfigError, match='WsToySink.in_shape is not a config key'):
        create('WsToyChain', {'WsToySink': {'in_shape': [1, 2]}})
    with pytest.raises(ConfigError, match='WsToySink is built for the output shapes'):
        create('WsToySink', {})


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def configs(tmp_path):
    write(tmp_path / 'bases' / 'base.yml', """
        num_classes: 1
        architecture: WsToyModel
        WsToyModel: {part: WsToyPart, depth: 3, ops: [{WsToyPart: {ratio: 0.1}}]}
        WsToyPart: {ratio: 0.5, sizes: [1, 2, 3]}
    """)
    write(tmp_path / 'bases' / 'typo.yml', """
        WsToyPart: {ratoi: 0.5}
    """)
    child = write(tmp_path / 'child.yml', """
        _BASE_: [bases/base.yml]
        WsToyPart: {sizes: [9]}
    """)
    bad_child = write(tmp_path / 'bad_child.yml', """
        _BASE_: [bases/base.yml, bases/typo.yml]
    """)
    return child, bad_child


def test_base_inheritance_is_relative_to_file_and_merges_dicts(configs):
    child, _ = configs
    cfg = load_config(str(child))
    assert cfg.WsToyModel.depth == 3
    assert cfg.WsToyPart.ratio == 0.5
    assert cfg.WsToyPart.sizes == [9], 'lists are replaced whole, not merged'


def test_overrides_set_every_key(configs):
    child, _ = configs
    cfg = load_config(str(child), ['WsToyPart.ratio=0.7', 'WsToyPart.sizes=[4,5]', 'WsToyModel.flag=true'])
    assert cfg.WsToyPart.ratio == 0.7 and cfg.WsToyPart.sizes == [4, 5] and cfg.WsToyModel.flag is True
    assert parse_overrides(['a.b.c=1', 'a.b.d=x']) == {'a': {'b': {'c': 1, 'd': 'x'}}}


def test_create_injects_shared_and_subcomponents(configs):
    child, _ = configs
    load_config(str(child), ['WsToyModel.depth=5'])
    model = create('WsToyModel')
    assert model.depth == 5
    assert isinstance(model.part, WsToyPart) and model.part.sizes == [9] and model.part.num_classes == 1
    inline = create('WsToyModel', part={'name': 'WsToyPart', 'ratio': 0.25})
    assert inline.part.ratio == 0.25 and inline.part.sizes == (16, 32)
    ops = build_component_list(model.ops, path='WsToyModel.ops')
    assert len(ops) == 1 and ops[0].ratio == 0.1
    assert build_component({'name': 'WsToyPart', 'name_tag': 'x'}).name_tag == 'x'


@pytest.mark.parametrize('override, expected', [
    ('WsToyPart.ratoi=1', ["unknown key WsToyPart.ratoi", "did you mean 'ratio'"]),
    ('WsToyModel.depth=abc', ['WsToyModel.depth should be int', "'abc'"]),
    ('WsToyModel.part=WsToyPrat', ["WsToyModel.part names unknown component 'WsToyPrat'", "'WsToyPart'"]),
    ('archtecture=x', ["unknown top-level key 'archtecture'", "'architecture'"]),
    ('WsToyModel.ops=[{WsToyPrat: {}}]', ["WsToyModel.ops[0] names unknown component", "'WsToyPart'"]),
    ('WsToyModel.ops=[{WsToyPart: {ratoi: 1}}]', ['WsToyModel.ops[0].ratoi', "'ratio'"]),
    ('WsToyModel.flag=3', ['WsToyModel.flag should be bool']),
    ('WsToyModel.depth=null', ['WsToyModel.depth should be int', 'None']),
    ('seed=-1', ['seed must be in [0, 4294967295]']),
    ('max_iters=null', ['max_iters should be int, got None']),
    ('ema_decay=1.0', ['ema_decay must be in (0.0, 1.0), got 1.0']),
    ('draw_threshold=abc', ["draw_threshold should be int or float, got 'abc'"]),
    ('weights=5', ['weights should be str or null, got 5']),
])
def test_bad_keys_are_rejected_with_path_and_close_matches(configs, override, expected):
    child, _ = configs
    with pytest.raises(ConfigError) as err:
        load_config(str(child), [override])
    message = str(err.value)
    assert message.startswith('-o override:'), message
    for fragment in expected:
        assert fragment in message


def test_error_names_the_base_file_that_set_the_key(configs):
    _, bad_child = configs
    with pytest.raises(ConfigError, match=r'typo\.yml: unknown key WsToyPart\.ratoi'):
        load_config(str(bad_child))


def test_missing_file_loop_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match='not found'):
        load_config(str(tmp_path / 'nope.yml'))
    loop = write(tmp_path / 'loop.yml', "_BASE_: [loop.yml]\n")
    with pytest.raises(ConfigError, match='loops back'):
        load_config(str(loop))
    broken = write(tmp_path / 'broken.yml', "a: [1, 2\n")
    with pytest.raises(ConfigError, match='broken.yml: not valid YAML'):
        load_config(str(broken))
    with pytest.raises(ConfigError, match='not of the form key=value'):
        parse_overrides(['novalue'])
    binary = tmp_path / 'binary.yml'
    binary.write_bytes(b'\x89PNG\x00garbage')
    with pytest.raises(ConfigError, match='binary.yml: not a text file'):
        load_config(str(binary))
    for bases in ('5', '[a.yml, [b.yml]]', '{a: b}'):
        odd = write(tmp_path / 'odd_base.yml', '_BASE_: {}\n'.format(bases))
        with pytest.raises(ConfigError, match='odd_base.yml: _BASE_ must be a file name or a list'):
            load_config(str(odd))


def test_a_key_the_config_does_not_set_is_a_config_error(tmp_path):
    empty = write(tmp_path / 'empty.yml', '')
    cfg = load_config(str(empty))
    with pytest.raises(ConfigError, match=r'empty\.yml: no architecture key \(set it in the config or with '
                                          r'-o architecture=\.\.\.\)'):
        cfg['architecture']
    assert getattr(cfg, 'architecture', None) is None and cfg.get('architecture') is None
    section = load_config(str(write(tmp_path / 'part.yml', 'WsToyPart: {ratio: 0.5}\n')))['WsToyPart']
    with pytest.raises(ConfigError, match='part.yml: no WsToyPart.sizes key'):
        section['sizes']


def test_unknown_component_in_create():
    with pytest.raises(ConfigError, match="did you mean 'WsToyPart'"):
        create('WsToyPrat', {})


def test_new_component_is_one_file(tmp_path, monkeypatch):
    package = tmp_path / 'ws_plugin_pkg'
    write(package / '__init__.py', '')
    write(package / 'sub' / '__init__.py', '')
    write(package / 'sub' / 'my_neck.py', """
        from ppdet_hambox.core.workspace import register

        @register
        class WsPluginNeck:
            def __init__(self, channels=8):
                self.channels = channels
    """)
    monkeypatch.syspath_prepend(str(tmp_path))
    import_submodules('ws_plugin_pkg')
    assert 'WsPluginNeck' in registered()
    assert create('WsPluginNeck', {'WsPluginNeck': {'channels': 4}}).channels == 4
    sys.modules.pop('ws_plugin_pkg.sub.my_neck', None)


def test_a_section_naming_another_component_replaces_the_old_one(tmp_path):
    write(tmp_path / 'base.yml', 'EvalDataset: {name: WIDERFaceDataset, anno_path: a.txt, '
                                  'dataset_dir: d}\n')
    child = write(tmp_path / 'child.yml', '_BASE_: base.yml\nEvalDataset: {dataset_dir: e}\n')
    assert dict(load_config(str(child))['EvalDataset']) == {'name': 'WIDERFaceDataset', 'anno_path': 'a.txt',
                                                             'dataset_dir': 'e'}
    cfg = load_config(str(child), ['EvalDataset={name: ImageFolder, dataset_dir: f, image_dir: g}'])
    assert dict(cfg['EvalDataset']) == {'name': 'ImageFolder', 'dataset_dir': 'f', 'image_dir': 'g'}
    with pytest.raises(ConfigError, match='is a folder, not a config file'):
        load_config(str(tmp_path))
