from .configurable_distiller import ConfigurableDistiller, GivenTensors

__all__ = ['ConfigurableDistiller', 'GivenTensors']
