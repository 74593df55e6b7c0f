"""Models: algorithms and the parts they are built from (see docs/api/index.md).

Importing this package registers every model, model wrapper and data preprocessor of
mmkd (the ``locations`` of ``mmkd.registry.MODELS`` and ``MODEL_WRAPPERS``).
"""
from . import (  # noqa: F401
    algorithms,
    combiners,
    connectors,
    distillers,
    heads,
    losses,
    preprocessors,
    recorders,
    surgery,
    task_models,
    teachers,
    utils,
    wrappers,
)
from .algorithms import *  # noqa: F401,F403
from .combiners import *  # noqa: F401,F403
from .connectors import *  # noqa: F401,F403
from .distillers import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .preprocessors import *  # noqa: F401,F403
from .recorders import *  # noqa: F401,F403
from .task_models import *  # noqa: F401,F403
