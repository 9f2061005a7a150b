"""The modules that define registered components, imported when a config is
loaded so that it can name them. Only these are imported: the demo generator,
export and quantisation stay unloaded until a tool asks for them.

A new component in one of these packages is a new file: nothing to edit here.
A new package of components is one more line."""
import importlib
import pkgutil

COMPONENT_PACKAGES = (
    'ppdet_hambox.data.transform',
    'ppdet_hambox.modeling',
)
COMPONENT_MODULES = (
    'ppdet_hambox.data.source.widerface',
    'ppdet_hambox.data.source.image_folder',
    'ppdet_hambox.data.reader',
    'ppdet_hambox.engine.optimizer',
    'ppdet_hambox.evaluation.protocols',
    'ppdet_hambox.evaluation.benchmarks',
)


def import_submodules(package_name):
    """Import every module below a package, recursively, so its components register."""
    package = importlib.import_module(package_name)
    for info in pkgutil.walk_packages(package.__path__, prefix=package_name + '.'):
        if not info.name.rsplit('.', 1)[-1].startswith('_'):
            importlib.import_module(info.name)


for _module in COMPONENT_MODULES:
    importlib.import_module(_module)
for _package in COMPONENT_PACKAGES:
    import_submodules(_package)
