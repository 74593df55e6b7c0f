"""Every core feature on every algorithm (issue 20: one distillation core).

Parametrised over the tiny builds of ``tiny_algorithms.CASES``; a guard fails when an
algorithm (a ``BaseAlgorithm`` subclass registered in mmkd's ``MODELS``) is neither in
that table nor in :data:`NOT_IN_MATRIX` with its reason. Features:

* the loss-weight schedule (``DistillLossWeightHook``): a factor of 0.5 halves every
  ``distill.*`` loss exactly and leaves the task losses unchanged;
* stop-distillation (``distillation_stopped``, ``StopDistillHook``): no ``distill.*``
  key, no teacher forward (counted with forward pre-hooks), the task losses of a run
  without distillation, distillation parameters kept in the graph with a zero gradient;
  or, where a stage has nothing but distillation, an error naming algorithm and stage;
* ``check_finite``: a NaN in one loss raises, naming that loss;
* the buffer survives a ``state_dict`` round trip, under the key it always had;
* cached teacher outputs: replayed (no teacher forward, the same terms) or refused;
* the log scheme: every logged key is ``distill.<term>`` or a task loss.
"""
import copy
import re
from types import SimpleNamespace

import pytest
import torch

from mmkd.engine import DistillLossWeightHook
from mmkd.models.algorithms import BaseAlgorithm
from mmkd.registry import MODELS

from .tiny_algorithms import CASES, run_loss

pytestmark = pytest.mark.filterwarnings('ignore')

#: registered BaseAlgorithm subclasses outside the matrix, with the reason
NOT_IN_MATRIX = {'BaseAlgorithm': 'the student alone: no teacher and no distillation term'}
DISTILL_KEY = re.compile(r'^distill\.[A-Za-z0-9_@.]+$')
OLD_SCHEMES = ('cotrain.', 'masknet.', 'sup.')

_BUILT = {}


def model_of(name):
    """The case's model (built once per session: builds take seconds) in its default state."""
    if name not in _BUILT:
        case = CASES[name]
        model = case.build()
        _BUILT[name] = (model, case.data(model))
    model, data = _BUILT[name]
    model.distill_loss_scale = 1.0
    model.distillation_stopped.fill_(False)
    model.zero_grad(set_to_none=True)
    return model, data


def same(a, b) -> bool:
    if torch.is_tensor(a):
        return torch.is_tensor(b) and torch.equal(a, b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


class TeacherCalls:
    """Counts every module call inside the given teachers (forward pre-hooks)."""

    def __init__(self, teachers):
        self.count = 0
        self.handles = [m.register_forward_pre_hook(self._hit)
                        for t in teachers for m in t.modules()]

    def _hit(self, *_):
        self.count += 1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()


def is_distill_loss(key: str) -> bool:
    return key.startswith('distill.') and 'loss' in key


class _Hub:
    def __init__(self):
        self.values = {}

    def update_scalar(self, key, value):
        self.values[key] = value


# The guard ---------------------------------------------------------------------------
def test_every_registered_algorithm_is_in_the_matrix():
    from mmkd.utils import register_all_modules
    register_all_modules()
    registered = {name for name, cls in MODELS.module_dict.items()
                  if isinstance(cls, type) and issubclass(cls, BaseAlgorithm)}
    covered = {case.algorithm for case in CASES.values()}
    missing = registered - covered - set(NOT_IN_MATRIX)
    assert not missing, (f'algorithms without a tiny build in tiny_algorithms.CASES (add one, '
                         f'or list them in NOT_IN_MATRIX with the reason): {sorted(missing)}')
    assert not covered - registered, f'CASES names unregistered classes: {covered - registered}'
    assert not covered & set(NOT_IN_MATRIX)


@pytest.mark.parametrize('name', list(CASES))
def test_weight_scale_halves_distill_terms_only(name):
    model, data = model_of(name)
    assert type(model).__name__ == CASES[name].algorithm
    base = run_loss(model, data)
    assert any(is_distill_loss(k) for k in base), sorted(base)
    # through the hook, as in training: warm-up from 0 over 2 iterations, at iteration 1
    runner = SimpleNamespace(model=model, iter=1, epoch=0, message_hub=_Hub(),
                             train_dataloader=[0])
    DistillLossWeightHook(warmup=2, start_factor=0.0).before_train_iter(runner, 0)
    assert model.distill_loss_scale == 0.5
    half = run_loss(model, data)
    assert list(half) == list(base)  # same keys, same order
    for key, value in base.items():
        if is_distill_loss(key):
            assert torch.equal(half[key], value * 0.5), key
        else:
            assert same(half[key], value), key


@pytest.mark.parametrize('name', list(CASES))
def test_stop_distillation(name):
    case = CASES[name]
    model, data = model_of(name)
    teachers = case.teachers(model)
    with TeacherCalls(teachers) as calls:
        base = run_loss(model, data)
    assert calls.count > 0 or not teachers
    model.distillation_stopped.fill_(True)
    if case.stop_error is not None:
        with pytest.raises(RuntimeError, match=case.stop_error):
            run_loss(model, data)
        return
    with TeacherCalls(teachers) as calls:
        stopped = run_loss(model, data)
    assert calls.count == 0, f'{calls.count} teacher module calls once stopped'
    assert not any(k.startswith('distill.') for k in stopped), sorted(stopped)
    task = [k for k in base if not k.startswith(('distill.', ) + case.resting)]
    assert list(stopped) == task
    if name == 'mgd':
        # no CutMix draw nor unlabelled forward first: the student alone, same random state
        torch.manual_seed(1)
        alone = model.architecture(data['inputs'], data['data_samples'], mode='loss')
        assert all(same(stopped[k], alone[k]) for k in alone) and list(alone) == task
    else:
        for key in task:
            assert same(stopped[key], base[key]), key
    # DDP: every distillation parameter still gets a gradient, exactly zero
    params = model.distillation_parameters()
    if params:
        sum(v for k, v in stopped.items() if 'loss' in k and torch.is_tensor(v)).backward()
        for p in params:
            assert p.grad is not None and not p.grad.any()


@pytest.mark.parametrize('name', list(CASES))
def test_check_finite_names_the_loss(name):
    model, data = model_of(name)
    assert model.check_finite
    module, key = CASES[name].nan_target(model)

    def to_nan(out):
        if torch.is_tensor(out):
            return out * float('nan')
        if isinstance(out, dict):
            return {k: to_nan(v) for k, v in out.items()}
        return type(out)(to_nan(v) for v in out)

    handle = module.register_forward_hook(lambda m, args, out: to_nan(out))
    try:
        with pytest.raises(FloatingPointError, match=re.escape(f'{key}=nan')):
            run_loss(model, data)
    finally:
        handle.remove()


@pytest.mark.parametrize('name', list(CASES))
def test_stop_buffer_survives_state_dict(name):
    model, _ = model_of(name)
    state = model.state_dict()
    assert state['distillation_stopped'].dtype == torch.bool
    model.distillation_stopped.fill_(True)
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    model.distillation_stopped.fill_(False)
    model.load_state_dict(saved)
    assert bool(model.distillation_stopped)
    model.distillation_stopped.fill_(False)


def _with_cache(data, values, fingerprint):
    from mmengine.structures import BaseDataElement
    data = dict(data)
    samples = data.get('data_samples')
    if samples is None:
        batch = data['inputs'][0] if isinstance(data['inputs'], (list, tuple)) else data['inputs']
        n = batch['input_ids'].shape[0] if isinstance(batch, dict) else batch.shape[0]
        samples = [BaseDataElement() for _ in range(n)]
    samples = copy.deepcopy(samples)
    for i, s in enumerate(samples):
        s.set_metainfo(dict(teacher_outputs={k: v[i] for k, v in values.items()},
                            teacher_fingerprint=fingerprint))
    data['data_samples'] = samples
    return data


@pytest.mark.parametrize('name', list(CASES))
def test_cached_teacher_outputs_used_or_refused(name):
    case = CASES[name]
    model, data = model_of(name)
    if not case.uses_cache:
        cached = _with_cache(data, {'neck': torch.zeros(64, 2)}, 'fingerprint')
        with pytest.raises(ValueError, match=f'{case.algorithm} cannot train from cached '
                                             'teacher outputs'):
            run_loss(model, cached)
        return
    base = run_loss(model, data)
    with torch.no_grad():
        model._teacher_forward(data['inputs'], data['data_samples'])
    values = model.distiller.read_teacher_sources()
    model.distiller.teacher_recorders.reset()
    cached = _with_cache(data, values, model.teacher_fingerprint())
    with TeacherCalls(case.teachers(model)) as calls:
        replayed = run_loss(model, cached)
    assert calls.count == 0
    assert list(replayed) == list(base)
    for key, value in base.items():
        assert torch.allclose(replayed[key], value, rtol=1e-6, atol=0), key


@pytest.mark.parametrize('name', list(CASES))
def test_log_keys_follow_the_scheme(name):
    case = CASES[name]
    model, data = model_of(name)
    _, log = model.parse_losses(run_loss(model, data))
    task = set()
    if case.stop_error is None:
        model.distillation_stopped.fill_(True)
        _, alone = model.parse_losses(run_loss(model, data))
        task = set(alone) - {'loss'}
    for key in log:
        assert not key.startswith(OLD_SCHEMES) and '.distill.' not in key, key
        if key == 'loss':
            continue
        if key.startswith('distill.'):
            assert DISTILL_KEY.match(key), key
        else:
            assert 'distill' not in key, key
            assert key in task or key.startswith(case.resting), (key, sorted(task))
