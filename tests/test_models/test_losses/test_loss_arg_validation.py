"""Build-time validation of loss arguments (issue 19), parametrised over the registry.

Every loss registered in mmkd's MODELS registry from ``mmkd.models.losses`` is picked
up automatically: a new loss must validate ``loss_weight`` (and ``tau`` if it has one)
through ``check_loss_args`` at construction, or these tests fail for it.
"""
import inspect

import pytest

import mmkd.models.losses  # noqa: F401  (registers the losses)
from mmkd.models.losses.utils import check_loss_args
from mmkd.registry import MODELS

# Minimal values of the constructor arguments that have no default. A new loss with a
# required argument must be listed here (the guard below says so).
REQUIRED_ARGS = {
    'ACAMKDLoss': dict(student_channels=4, teacher_channels=4),
    'MGDLoss': dict(student_channels=4, teacher_channels=4),
}


def registered_losses():
    MODELS.import_from_location()
    classes = {cls for cls in MODELS.module_dict.values()
               if inspect.isclass(cls) and cls.__module__.startswith('mmkd.models.losses')}
    return sorted(classes, key=lambda c: c.__name__)


LOSSES = registered_losses()
IDS = [c.__name__ for c in LOSSES]


def params(cls):
    return inspect.signature(cls.__init__).parameters


def build(cls, **kwargs):
    return cls(**dict(REQUIRED_ARGS.get(cls.__name__, {}), **kwargs))


def test_registry_lists_the_losses():
    names = set(IDS)
    # a few known ones, so that an empty or broken registry scan cannot pass silently
    assert {'KLDivergence', 'DKDLoss', 'ChannelWiseDivergence', 'MimicKLLoss', 'DPOLoss'} <= names
    assert len(names) >= 25


@pytest.mark.parametrize('cls', LOSSES, ids=IDS)
def test_guard_every_loss_is_covered(cls):
    p = params(cls)
    required = [n for n, v in p.items() if n != 'self' and v.default is inspect.Parameter.empty
                and v.kind not in (v.VAR_POSITIONAL, v.VAR_KEYWORD)]
    missing = sorted(set(required) - set(REQUIRED_ARGS.get(cls.__name__, {})))
    assert not missing, (f'{cls.__name__} has required arguments {missing}: add minimal values to '
                         'REQUIRED_ARGS in this file')
    assert 'loss_weight' in p and 'allow_negative_weight' in p, (
        f'{cls.__name__} must take loss_weight and allow_negative_weight and pass them to '
        'check_loss_args')
    assert p['allow_negative_weight'].default is False
    build(cls)  # the defaults are valid


@pytest.mark.parametrize('cls', LOSSES, ids=IDS)
def test_string_loss_weight_raises_type_error(cls):
    with pytest.raises(TypeError) as err:
        build(cls, loss_weight='1.0')
    msg = str(err.value)
    assert cls.__name__ in msg and 'loss_weight' in msg and "'1.0'" in msg


@pytest.mark.parametrize('cls', LOSSES, ids=IDS)
@pytest.mark.parametrize('bad', [True, None, [1.0], float('nan'), float('inf')])
def test_other_bad_loss_weights(cls, bad):
    expected = ValueError if isinstance(bad, float) else TypeError
    with pytest.raises(expected, match=f'{cls.__name__}.*loss_weight'):
        build(cls, loss_weight=bad)


@pytest.mark.parametrize('cls', LOSSES, ids=IDS)
def test_negative_loss_weight_needs_opt_in(cls):
    with pytest.raises(ValueError) as err:
        build(cls, loss_weight=-1)
    msg = str(err.value)
    assert cls.__name__ in msg and 'loss_weight' in msg and 'allow_negative_weight' in msg
    loss = build(cls, loss_weight=-1, allow_negative_weight=True)
    assert loss.loss_weight == -1
    assert build(cls, loss_weight=0).loss_weight == 0  # 0 switches a term off: allowed
    assert build(cls, loss_weight=2).loss_weight == 2  # an int is a number


TAU_LOSSES = [c for c in LOSSES if 'tau' in params(c)]


def test_tau_losses_found():
    assert {'KLDivergence', 'DKDLoss', 'ChannelWiseDivergence', 'PixelBSDLoss', 'MDistLoss',
            'MimicKLLoss', 'RoutedKDLoss', 'EnsembleKDLoss'} <= {c.__name__ for c in TAU_LOSSES}


@pytest.mark.parametrize('cls', TAU_LOSSES, ids=[c.__name__ for c in TAU_LOSSES])
def test_tau_validation(cls):
    with pytest.raises(TypeError) as err:
        build(cls, tau='4')
    msg = str(err.value)
    assert cls.__name__ in msg and 'tau' in msg and "'4'" in msg
    for bad in (0, -1.0):
        with pytest.raises(ValueError, match=f'{cls.__name__}: tau must be > 0'):
            build(cls, tau=bad)
    assert build(cls, tau=4).tau == 4


def _numeric_defaults(cls):
    return [n for n, v in params(cls).items()
            if isinstance(v.default, (int, float)) and not isinstance(v.default, bool)]


NUMERIC = [(c, n) for c in LOSSES for n in _numeric_defaults(c)]


@pytest.mark.parametrize('cls,name', NUMERIC, ids=[f'{c.__name__}.{n}' for c, n in NUMERIC])
def test_every_numeric_argument_refuses_a_string(cls, name):
    value = str(params(cls)[name].default)
    with pytest.raises((TypeError, ValueError)) as err:
        build(cls, **{name: value})
    assert name in str(err.value) and cls.__name__ in str(err.value), str(err.value)


def test_check_loss_args_rules():
    class Dummy:
        pass

    check_loss_args(Dummy, tau=1, loss_weight=0.0, beta=2.5, k=3, integers=('k', ))
    with pytest.raises(TypeError, match=r"Dummy: k=2.0 must be an int"):
        check_loss_args(Dummy, k=2.0, integers=('k', ))
    with pytest.raises(TypeError, match=r"Dummy: eps=None must be a number"):
        check_loss_args(Dummy, eps=None)
    check_loss_args(Dummy, eps=None, optional=('eps', ))
    with pytest.raises(ValueError, match='Dummy: beta must be > 0, got 0'):
        check_loss_args(Dummy, beta=0, positive=('beta', ))
    with pytest.raises(ValueError, match='Dummy: eps must be >= 0'):
        check_loss_args(Dummy, eps=-1e-3, non_negative=('eps', ))
    check_loss_args(Dummy, loss_weight=-0.5, allow_negative_weight=True)
    with pytest.raises(TypeError, match='allow_negative_weight'):
        check_loss_args(Dummy, loss_weight=1.0, allow_negative_weight='yes')
    with pytest.raises(KeyError, match='not given'):  # a rule for an argument not passed
        check_loss_args(Dummy, tau=1.0, positive=('tua', ))
