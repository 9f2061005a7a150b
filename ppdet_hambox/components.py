"""Imports every module of the packages that register components, so that
configs can name them. A new component is a new file: nothing to edit here."""
from ppdet_hambox.core.workspace import import_submodules

COMPONENT_PACKAGES = [
    'ppdet_hambox.data',
    'ppdet_hambox.modeling',
    'ppdet_hambox.engine',
]

for _package in COMPONENT_PACKAGES:
    import_submodules(_package)
