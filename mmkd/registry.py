"""Registries of mmkd.

Every registry is a child of mmengine's root registry of the same kind, with scope
``mmkd``. A config can therefore mix ``mmkd`` objects with objects of mmdet, mmseg or
mmpretrain (``type='mmdet.RetinaNet'`` or ``_scope_='mmdet'``), and the Runner of any
of those packages can build mmkd algorithms.

``locations`` makes the registries lazy: the modules that register objects are
imported the first time a registry is searched, so ``import mmkd`` stays fast.
"""
from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import Registry

MODELS = Registry('model', parent=MMENGINE_MODELS, scope='mmkd', locations=['mmkd.models'])
MODEL_WRAPPERS = Registry(
    'model wrapper', parent=MMENGINE_MODEL_WRAPPERS, scope='mmkd', locations=['mmkd.models'])
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, scope='mmkd', locations=['mmkd.engine'])
OPTIM_WRAPPERS = Registry(
    'optim wrapper', parent=MMENGINE_OPTIM_WRAPPERS, scope='mmkd', locations=['mmkd.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor',
    parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
    scope='mmkd',
    locations=['mmkd.engine'])
DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, scope='mmkd', locations=['mmkd.datasets'])
DATA_SAMPLERS = Registry(
    'data sampler', parent=MMENGINE_DATA_SAMPLERS, scope='mmkd', locations=['mmkd.datasets'])
TRANSFORMS = Registry(
    'transform', parent=MMENGINE_TRANSFORMS, scope='mmkd', locations=['mmkd.datasets'])
METRICS = Registry('metric', parent=MMENGINE_METRICS, scope='mmkd', locations=['mmkd.evaluation'])
