"""Component registry and YAML configs, in the manner of ``ppdet.core.workspace``.

Differences from PaddleDetection, on purpose:
- ``-o a.b=1 a.c=2`` sets both keys (overrides are merged one by one);
- unknown keys, unknown component names and wrongly typed values are
  rejected with the config file, the key path and the closest valid names;
- ``_BASE_`` paths are resolved relative to the file that names them;
- the modules that define components are listed in ``ppdet_hambox.components``
  and imported on first use; a new component in a listed package is one new
  file;
- shapes flow from one injected part to the next, as with detectron2's
  ``output_shape()``: a component whose constructor takes ``in_shape`` is
  built with the ``out_shape`` of the part its parent names in
  ``__in_shape_from__`` (``{'neck': 'backbone', 'head': 'neck'}``), so no
  config repeats a channel count; ``in_shape`` is not a config key.
"""
import copy
import difflib
import importlib
import inspect
import os

import yaml

from ppdet_hambox.core.errors import ConfigError, UserError
from ppdet_hambox.core.schema import GLOBAL_KEYS, GLOBAL_RANGES

__all__ = [
    'register', 'create', 'load_config', 'parse_overrides', 'AttrDict',
    'registered', 'ConfigError', 'build_component', 'build_component_list',
]

BASE_KEY = '_BASE_'
IN_SHAPE = 'in_shape'
SOURCE_KEY = '__source__'
ORIGINS_KEY = '__origins__'
PRIVATE_KEYS = (SOURCE_KEY, ORIGINS_KEY)


class AttrDict(dict):
    """A dict whose keys read as attributes (``cfg.TrainReader.batch_size``)."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key, value):
        self[key] = value


class MissingKeyError(ConfigError, KeyError):
    """A key the config does not set; a ``KeyError`` too, so ``getattr`` and
    ``hasattr`` treat it as absent."""

    def __str__(self):
        return str(self.args[0])


class ConfigNode(AttrDict):
    """A loaded config or one of its sections: reading a key it does not set is
    a ``MissingKeyError`` naming the config file and the key path, not a bare
    ``KeyError``."""

    def __missing__(self, key):
        state = self.__dict__
        path = '{}.{}'.format(state['path'], key) if state.get('path') else str(key)
        raise MissingKeyError('{}: no {} key (set it in the config or with -o {}=...)'.format(
            state.get('source', '<config>'), path, path))


class ComponentSpec:
    """What the registry knows of a class: its defaults and how to build it."""

    def __init__(self, cls):
        self.cls = cls
        self.name = cls.__name__
        self.shared = list(getattr(cls, '__shared__', []))
        self.inject = list(getattr(cls, '__inject__', []))
        self.component_lists = list(getattr(cls, '__component_lists__', []))
        self.in_shape_from = dict(getattr(cls, '__in_shape_from__', {}))
        self.ranges = dict(getattr(cls, '__ranges__', {}))
        signature = inspect.signature(cls.__init__)
        self.params = {}
        self.takes_kwargs = False
        for pname, param in list(signature.parameters.items())[1:]:
            if param.kind == param.VAR_KEYWORD:
                self.takes_kwargs = True
            elif param.kind != param.VAR_POSITIONAL:
                self.params[pname] = param.default
        self.takes_in_shape = IN_SHAPE in self.params
        self.params.pop(IN_SHAPE, None)
        self.required = [p for p, d in self.params.items() if d is inspect.Parameter.empty]


_REGISTRY = {}
_GLOBAL_CONFIG = ConfigNode()


def register(cls):
    """Class decorator: make ``cls`` buildable by name from configs."""
    if cls.__name__ in _REGISTRY and _REGISTRY[cls.__name__].cls is not cls:
        raise ValueError('component {!r} is registered twice ({} and {})'.format(
            cls.__name__, _REGISTRY[cls.__name__].cls.__module__, cls.__module__))
    _REGISTRY[cls.__name__] = ComponentSpec(cls)
    return cls


def registered():
    """Names of all registered components."""
    return sorted(_REGISTRY)


def _ensure_components_loaded():
    importlib.import_module('ppdet_hambox.components')


def _close(name, choices):
    matches = difflib.get_close_matches(str(name), [str(c) for c in choices], n=3, cutoff=0.5)
    return ' (did you mean {}?)'.format(', '.join(repr(m) for m in matches)) if matches else ''


def _source_of(cfg, path=None):
    """The file that set ``path`` (walking up to its parents), else the config file."""
    if not isinstance(cfg, dict):
        return '<config>'
    origins = cfg.get(ORIGINS_KEY) or {}
    while path:
        path = path.split('[', 1)[0]
        if path in origins:
            return origins[path]
        path = path.rpartition('.')[0]
    return cfg.get(SOURCE_KEY, '<config>')


def _deep_merge(base, update):
    """Dicts merge key by key, everything else (lists included) is replaced;
    so is a dict naming another component (``name``): the keys of the old
    component would not fit the new one."""
    out = copy.copy(base)
    for key, value in update.items():
        if (isinstance(value, dict) and isinstance(out.get(key), dict)
                and value.get('name', out[key].get('name')) == out[key].get('name')):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _to_attrdict(obj, source=None, path=''):
    if isinstance(obj, dict):
        node = ConfigNode({k: _to_attrdict(v, source, '{}.{}'.format(path, k) if path else str(k))
                           for k, v in obj.items()})
        node.__dict__.update(source=source, path=path)
        return node
    if isinstance(obj, list):
        return [_to_attrdict(v, source, path) for v in obj]
    return obj


def _read_yaml(path):
    if os.path.isdir(path):
        raise ConfigError('{} is a folder, not a config file'.format(path))
    if not os.path.isfile(path):
        raise ConfigError('config file not found: {}'.format(path))
    with open(path, encoding='utf-8') as f:
        try:
            data = yaml.safe_load(f) or {}
        except yaml.YAMLError as err:
            raise ConfigError('{}: not valid YAML: {}'.format(path, err)) from None
        except UnicodeDecodeError:
            raise ConfigError('{}: not a text file (a YAML config is UTF-8 text)'.format(path)) from None
    if not isinstance(data, dict):
        raise ConfigError('{}: the top level must be a mapping of keys'.format(path))
    return data


def _record_origins(data, origin, origins, prefix=''):
    """Note which file (or ``-o``) set each key path, for error messages."""
    for key, value in data.items():
        path = '{}.{}'.format(prefix, key) if prefix else str(key)
        origins[path] = origin
        if isinstance(value, dict):
            _record_origins(value, origin, origins, path)


def _load_with_bases(path, origins, seen=()):
    path = os.path.abspath(path)
    if path in seen:
        raise ConfigError('{}: _BASE_ inheritance loops back to itself'.format(path))
    data = _read_yaml(path)
    bases = data.pop(BASE_KEY, None) or []
    if isinstance(bases, str):
        bases = [bases]
    if not (isinstance(bases, list) and all(isinstance(base, str) and base for base in bases)):
        raise ConfigError('{}: {} must be a file name or a list of file names, got {!r}'.format(
            path, BASE_KEY, bases))
    merged = {}
    for base in bases:
        base_path = os.path.join(os.path.dirname(path), base)
        merged = _deep_merge(merged, _load_with_bases(base_path, origins, seen + (path,)))
    _record_origins(data, path, origins)
    return _deep_merge(merged, data)


def load_config(path, overrides=None, validate=True):
    """Load a YAML config with its ``_BASE_`` files, apply ``-o`` overrides,
    validate it against the registry and make it the global config."""
    origins = {}
    cfg = _load_with_bases(path, origins)
    if overrides:
        overrides = overrides if isinstance(overrides, dict) else parse_overrides(overrides)
        _record_origins(overrides, '-o override', origins)
        cfg = _deep_merge(cfg, overrides)
    cfg = _to_attrdict(cfg, os.path.abspath(path))
    cfg[SOURCE_KEY] = os.path.abspath(path)
    cfg[ORIGINS_KEY] = origins
    if validate:
        validate_config(cfg)
    _GLOBAL_CONFIG.clear()
    _GLOBAL_CONFIG.update(cfg)
    _GLOBAL_CONFIG.__dict__.update(cfg.__dict__)
    return _GLOBAL_CONFIG


def _parse_scalar(text):
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def parse_overrides(items):
    """``['a.b.c=1', 'a.b.d=x']`` -> ``{'a': {'b': {'c': 1, 'd': 'x'}}}``; every item kept."""
    result = {}
    for item in items or []:
        if '=' not in item:
            raise ConfigError('override {!r} is not of the form key=value'.format(item))
        key, value = item.split('=', 1)
        parts = key.strip().split('.')
        if not all(parts):
            raise ConfigError('override {!r} has an empty key part'.format(item))
        node = result
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError('override {!r} sets a key below a value'.format(item))
        node[parts[-1]] = _parse_scalar(value)
    return result


def _type_fits(value, default):
    """A config value fits a default of the same broad type (a None or missing
    default takes anything, numbers fit a float default; ``null`` fits only
    where the default is None: elsewhere it is not a way to say "default")."""
    if default is None or default is inspect.Parameter.empty:
        return True
    if value is None:
        return False
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, (str, dict))
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    if isinstance(default, dict):
        return isinstance(value, dict)
    return True


def _fail(cfg, path, message):
    """A ConfigError naming the file that set ``path`` and the key path."""
    return ConfigError('{}: {}'.format(_source_of(cfg, path), message))


def _validate_component(spec, section, path, cfg):
    if not isinstance(section, dict):
        raise _fail(cfg, path, '{} must be a mapping of constructor arguments, got {!r}'.format(path, section))
    for key, value in section.items():
        key_path = '{}.{}'.format(path, key)
        if key == 'name':
            continue
        if key == IN_SHAPE and spec.takes_in_shape:
            raise _fail(cfg, key_path, '{} is not a config key: {} is built for the output shapes of '
                                       'the part before it'.format(key_path, spec.name))
        if key not in spec.params:
            if spec.takes_kwargs:
                continue
            raise _fail(cfg, key_path, 'unknown key {} for {}{}; valid keys: {}'.format(
                key_path, spec.name, _close(key, spec.params), ', '.join(spec.params)))
        if key in spec.inject:
            _validate_inject_value(value, key_path, cfg)
        elif key in spec.component_lists:
            _validate_component_list(value, key_path, cfg)
        elif not _type_fits(value, spec.params[key]):
            raise _fail(cfg, key_path, '{} should be {} like its default {!r}, got {!r}'.format(
                key_path, type(spec.params[key]).__name__, spec.params[key], value))
        elif key in spec.ranges:
            _check_range(spec.ranges[key], value, key_path, cfg)


def _check_range(allowed, value, path, cfg):
    wanted = allowed.check(value)
    if wanted is not None:
        raise _fail(cfg, path, '{} must be {}, got {!r}'.format(path, wanted, value))


def _validate_inject_value(value, path, cfg):
    if value is None:
        return
    if isinstance(value, str):
        name, section = value, {}
    elif isinstance(value, dict):
        if 'name' not in value:
            raise _fail(cfg, path, '{} needs a "name" key naming a component'.format(path))
        name, section = value['name'], value
    else:
        raise _fail(cfg, path, '{} must name a component, got {!r}'.format(path, value))
    if name not in _REGISTRY:
        raise _fail(cfg, path, '{} names unknown component {!r}{}'.format(path, name, _close(name, _REGISTRY)))
    _validate_component(_REGISTRY[name], section, path, cfg)


def _list_item(item, path, cfg):
    """``{Name: {kwargs}}`` -> (name, kwargs), the form of transform lists."""
    if isinstance(item, str):
        item = {item: {}}
    if not (isinstance(item, dict) and len(item) == 1):
        raise _fail(cfg, path, '{} must be a one-key mapping like {{Decode: {{}}}}, got {!r}'.format(path, item))
    (name, kwargs), = item.items()
    return name, dict(kwargs or {})


def _validate_component_list(items, path, cfg):
    if items is None:
        return
    if not isinstance(items, list):
        raise _fail(cfg, path, '{} must be a list of components, got {!r}'.format(path, items))
    for index, item in enumerate(items):
        item_path = '{}[{}]'.format(path, index)
        name, kwargs = _list_item(item, item_path, cfg)
        _validate_inject_value(dict(kwargs, name=name), item_path, cfg)


def validate_config(cfg):
    """Reject unknown top-level keys, unknown component arguments and bad types."""
    _ensure_components_loaded()
    for key, value in cfg.items():
        if key in PRIVATE_KEYS:
            continue
        if key in _REGISTRY:
            _validate_component(_REGISTRY[key], value, key, cfg)
        elif key in GLOBAL_KEYS:
            expected = GLOBAL_KEYS[key]
            if expected == 'component':
                _validate_inject_value(value, key, cfg)
            elif not isinstance(value, expected):
                names = [t.__name__ for t in (expected if isinstance(expected, tuple) else (expected,))]
                raise _fail(cfg, key, '{} should be {}, got {!r}'.format(
                    key, ' or '.join(n if n != 'NoneType' else 'null' for n in names), value))
            elif key in GLOBAL_RANGES:
                _check_range(GLOBAL_RANGES[key], value, key, cfg)
        else:
            raise _fail(cfg, key, 'unknown top-level key {!r}{}'.format(
                key, _close(key, list(GLOBAL_KEYS) + list(_REGISTRY))))


def build_component(value, cfg=None, path='component'):
    """Build a component named by a config value: a class name, or a
    ``{name: ClassName, ...kwargs}`` mapping (e.g. ``TrainDataset``)."""
    _ensure_components_loaded()
    cfg = _GLOBAL_CONFIG if cfg is None else cfg
    _validate_inject_value(value, path, cfg)
    name, section = _component_section(value, cfg)
    return _build(_REGISTRY[name], section, cfg)


def build_component_list(items, cfg=None, path='components'):
    """Build ``[{Name: {kwargs}}, ...]`` (a transform pipeline) into objects."""
    _ensure_components_loaded()
    cfg = _GLOBAL_CONFIG if cfg is None else cfg
    _validate_component_list(items, path, cfg)
    built = []
    for index, item in enumerate(items or []):
        name, kwargs = _list_item(item, '{}[{}]'.format(path, index), cfg)
        built.append(_build(_REGISTRY[name], kwargs, cfg))
    return built


def _component_section(value, cfg):
    """(name, kwargs) for an injected value: a name, or a dict with ``name``."""
    if isinstance(value, dict):
        section = dict(value)
        return section.pop('name'), section
    return value, dict(cfg.get(value, {}) or {})


def create(name_or_cls, cfg=None, in_shape=None, **kwargs):
    """Build a registered component from its config section.

    Arguments come, lowest priority first, from the constructor defaults, the
    global keys named in ``__shared__``, the section ``cfg[name]`` and
    ``kwargs``; injected arguments that hold a component name or a
    ``{name: ...}`` dict are built recursively. ``in_shape`` (the output
    shapes of the part before) goes to components that take it.
    """
    _ensure_components_loaded()
    cfg = _GLOBAL_CONFIG if cfg is None else cfg
    name = name_or_cls if isinstance(name_or_cls, str) else name_or_cls.__name__
    if name not in _REGISTRY:
        raise ConfigError('{}: unknown component {!r}{}'.format(
            _source_of(cfg), name, _close(name, _REGISTRY)))
    spec = _REGISTRY[name]
    section = dict(cfg.get(name, {}) or {})
    section.pop('name', None)
    section.update(kwargs)
    return _build(spec, section, cfg, in_shape)


def _build(spec, section, cfg, in_shape=None):
    _validate_component(spec, section, spec.name, cfg)
    args = {key: cfg[key] for key in spec.shared if key in cfg}
    args.update(section)
    for key in spec.inject:
        value = args.get(key, spec.params.get(key))
        if isinstance(value, (str, dict)) and value is not inspect.Parameter.empty:
            sub_name, sub_section = _component_section(value, cfg)
            if sub_name not in _REGISTRY:
                raise ConfigError('{}: {}.{} names unknown component {!r}{}'.format(
                    _source_of(cfg), spec.name, key, sub_name, _close(sub_name, _REGISTRY)))
            args[key] = _build(_REGISTRY[sub_name], sub_section, cfg, _shape_for(spec, key, args))
    missing = [p for p in spec.required if p not in args]
    if missing:
        raise ConfigError('{}: {} needs {} (set {})'.format(
            _source_of(cfg), spec.name, ', '.join(missing),
            ', '.join('{}.{}'.format(spec.name, m) for m in missing)))
    args = {k: v for k, v in args.items() if k in spec.params or spec.takes_kwargs}
    if spec.takes_in_shape:
        if in_shape is None:
            raise ConfigError('{}: {} is built for the output shapes of the part before it; name it in '
                              'the architecture (e.g. HAMBox.neck) rather than on its own'.format(
                                  _source_of(cfg), spec.name))
        args[IN_SHAPE] = list(in_shape)
    try:
        return spec.cls(**_plain(args))
    except UserError:
        raise
    except ValueError as err:  # a constructor refusing its config values (they are all it was given)
        raise ConfigError('{}: {}'.format(_source_of(cfg, spec.name), err)) from None


def _shape_for(spec, key, args):
    """``out_shape`` of the already-built part that ``spec`` feeds into ``key``."""
    source = spec.in_shape_from.get(key)
    if source is None:
        return None
    return getattr(args.get(source), 'out_shape', None)


def _plain(obj):
    """AttrDicts back to plain dicts and lists, so components get ordinary values."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    return obj
