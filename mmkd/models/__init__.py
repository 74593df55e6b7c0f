from . import algorithms, connectors, distillers, heads, losses, recorders, wrappers  # noqa: F401
from .algorithms import *  # noqa: F401,F403
from .connectors import *  # noqa: F401,F403
from .distillers import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .recorders import *  # noqa: F401,F403
