"""Mistakes users make with checkpoints, data and the CLI tools (issue 19, "no silent failure").

Every case either does the right thing (asserted: which weights end up in the model,
what is logged) or stops with an error that names the key or argument and the file.
``tools/train.py`` and ``tools/test.py`` run in this process (their ``main``), except
where the printed ``error:`` line of a real process is the point; the train and test
loops are replaced by a probe (:func:`probe`) where only loading matters, so each case
takes seconds. docs/reliability.md ("Mistakes and what mmkd says") lists the cases.
"""
import importlib.util
import json
import os
import os.path as osp
import shlex
import subprocess
import sys

import pytest
import torch
from torch import nn

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
KD_CFG = 'configs/kd/kd_logits_resnet18-w32_resnet18-w8_digits-10pct_demo.py'
STUDENT_CFG = 'configs/kd/student_resnet18-w8_digits-10pct_demo.py'
TEACHER_CFG = 'configs/kd/teacher_resnet18-w32_digits_demo.py'
FITNET_CFG = 'configs/fitnet/fitnet_resnet18-w32_resnet18-w8_digits-10pct_demo.py'
DET_CFG = 'configs/fitnet/fitnet_fpn_retinanet-r18_retinanet-r18-w16_shapes_demo.py'
SEG_CFG = 'configs/cwd/cwd_logits_fcn-r18_fcn-r18-w16_shapes_demo.py'
FAST = ['train_cfg.max_iters=2', 'train_cfg.val_interval=100',
        'default_hooks.checkpoint.interval=2', 'default_hooks.logger.interval=1',
        'train_dataloader.batch_size=8']
NO_TEACHER = 'model.teacher_ckpt=None'

pytestmark = pytest.mark.filterwarnings('ignore:SingleTeacherDistill')


def _tool(path):
    spec = importlib.util.spec_from_file_location(
        'mmkd_cli_' + osp.splitext(osp.basename(path))[0], osp.join(ROOT, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _unique_run(argv):
    """mmengine names a run CONFIG_TIMESTAMP (seconds) and reuses the logger and visualizer
    of a run with the same name in the same process: give each in-process run its own."""
    import uuid
    name = f'experiment_name=bad-input-{uuid.uuid4().hex[:8]}'
    argv = list(argv)
    if '--cfg-options' in argv:
        argv.insert(argv.index('--cfg-options') + 1, name)
    else:
        argv += ['--cfg-options', name]
    return argv


def train(*argv):
    return _tool('tools/train.py').main(_unique_run(argv))


def test_tool(*argv):
    return _tool('tools/test.py').main(_unique_run(argv))


test_tool.__test__ = False  # a helper, not a test


def convert(*argv):
    return _tool('tools/model_converters/convert_kd_ckpt_to_student.py').main(list(argv))


def run_process(*args, env=None):
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, 'OMP_NUM_THREADS': '1', **(env or {})})
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture
def probe(monkeypatch):
    """Replace the train and test loops: record the model's state right after mmengine
    loaded (or did not load) the checkpoint, and run no step."""
    from mmengine.runner import loops
    seen = {}

    def record(loop):
        model = loop.runner.model
        seen['model'] = type(model).__name__
        seen['state'] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        seen['iter'] = loop.runner.iter
        seen['teachers_loaded'] = [v.loaded for v in vars(model).values()
                                   if type(v).__name__ == 'TeacherSet']

    def test_run(self):
        record(self)
        return {'probe/ran': 1.0}

    def train_run(self):
        record(self)
        return self.runner.model

    monkeypatch.setattr(loops.TestLoop, 'run', test_run)
    monkeypatch.setattr(loops.IterBasedTrainLoop, 'run', train_run)
    return seen


@pytest.fixture(scope='module')
def ckpts(tmp_path_factory):
    """2-iteration runs of the digits student alone and of KD, and the converted student."""
    root = tmp_path_factory.mktemp('ckpts')
    train(STUDENT_CFG, '--work-dir', str(root / 'student'), '--cfg-options', *FAST)
    train(KD_CFG, '--work-dir', str(root / 'kd'), '--cfg-options', NO_TEACHER, *FAST)
    convert(str(root / 'kd' / 'iter_2.pth'), str(root / 'converted.pth'))
    # a checkpoint of another model: the teacher-sized ResNet (w32 instead of w8)
    from mmengine.config import Config

    from mmkd.utils import build_task_model
    torch.manual_seed(0)
    teacher, _ = build_task_model(dict(Config.fromfile(TEACHER_CFG).model, _scope_='mmpretrain'))
    torch.save({'state_dict': teacher.state_dict(), 'meta': {}}, root / 'other_model.pth')
    return dict(root=root, student=str(root / 'student' / 'iter_2.pth'),
                kd=str(root / 'kd' / 'iter_2.pth'), converted=str(root / 'converted.pth'),
                other=str(root / 'other_model.pth'), kd_work=str(root / 'kd'))


def _file_state(path):
    ckpt = torch.load(path, weights_only=True)
    return ckpt.get('state_dict', ckpt)


def _assert_same(state, expected, prefix=''):
    assert expected, 'nothing to compare'
    for key, value in expected.items():
        assert torch.equal(state[prefix + key], value), f'{prefix + key} differs from the file'


class _RunsCode:
    """Unpickling this calls os.system: a malicious checkpoint; ``marker`` shows if it ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f'touch {shlex.quote(self.marker)}', ))


@pytest.fixture
def evil(tmp_path):
    path, marker = tmp_path / 'evil.pth', tmp_path / 'pwned'
    torch.save({'state_dict': {'w': torch.zeros(1)}, 'meta': {'iter': 1, 'epoch': 0},
                'payload': _RunsCode(marker)}, path)
    return str(path), marker


def _assert_refused_unsafe(err, path, marker):
    text = str(err)
    assert 'refusing to load' in text and path in text
    assert 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1' in text  # the explicit trusted opt-in
    assert 'weights_only=False' not in text and 'weights_only` set to `False' not in text
    assert not marker.exists(), 'the payload ran'


@pytest.fixture
def bad_files(tmp_path, ckpts):
    """Files that are no checkpoint: empty, truncated, text, json, a bare list."""
    good = open(ckpts['converted'], 'rb').read()
    files = {'empty': b'', 'truncated': good[:len(good) // 2], 'text': b'hello, not a model\n',
             'json': b'{"state_dict": {}}'}
    out = {}
    for name, data in files.items():
        (tmp_path / f'{name}.pth').write_bytes(data)
        out[name] = str(tmp_path / f'{name}.pth')
    torch.save([1, 2, 3], tmp_path / 'list.pth')
    out['list'] = str(tmp_path / 'list.pth')
    return out


BAD_FILE_WORDS = {'empty': 'is empty (0 bytes)', 'truncated': 'is truncated or corrupt',
                  'text': 'is not a PyTorch checkpoint', 'json': 'is not a PyTorch checkpoint',
                  'list': 'holds no model weights'}


# A. checkpoint kinds ------------------------------------------------------------------

def test_test_py_loads_a_converted_student_into_the_distillation_model(ckpts, probe, tmp_path):
    """Was: mmengine's non-strict load matched no key and evaluated a random student."""
    metrics = test_tool(KD_CFG, ckpts['converted'], '--work-dir', str(tmp_path), '--cfg-options',
                        NO_TEACHER)
    assert metrics == {'probe/ran': 1.0} and probe['model'] == 'SingleTeacherDistill'
    _assert_same(probe['state'], _file_state(ckpts['converted']), prefix='architecture.')


def test_test_py_loads_a_plain_student_checkpoint_into_the_distillation_model(ckpts, probe,
                                                                             tmp_path):
    test_tool(KD_CFG, ckpts['student'], '--work-dir', str(tmp_path), '--cfg-options', NO_TEACHER)
    _assert_same(probe['state'], _file_state(ckpts['student']), prefix='architecture.')


def test_test_py_neither_needs_nor_loads_the_teacher(ckpts, probe, tmp_path):
    """Was: tools/test.py built the teacher and read its checkpoint (failing when the file
    was absent), though testing never runs it. Now it is structure only, never read."""
    absent = str(tmp_path / 'no_such_teacher.pth')
    metrics = test_tool(KD_CFG, ckpts['kd'], '--work-dir', str(tmp_path), '--cfg-options',
                        f'model.teacher_ckpt={absent}')
    assert metrics == {'probe/ran': 1.0} and probe['teachers_loaded'] == [False]
    _assert_same(probe['state'], _file_state(ckpts['kd']))  # the student is the file's
    log = open(next(tmp_path.rglob('*.log'))).read()
    assert 'teacher: not loaded (tools/test.py evaluates the student only)' in log
    assert f"teacher_ckpt='{absent}' is not read" in log


def test_test_py_gives_a_plain_config_the_student_of_a_distillation_checkpoint(ckpts, probe,
                                                                              tmp_path):
    test_tool(STUDENT_CFG, ckpts['kd'], '--work-dir', str(tmp_path))
    assert probe['model'] == 'ImageClassifier'
    expected = {k[len('architecture.'):]: v for k, v in _file_state(ckpts['kd']).items()
                if k.startswith('architecture.')}
    _assert_same(probe['state'], expected)


def test_test_py_refuses_a_checkpoint_of_another_model(ckpts, probe, tmp_path):
    from mmkd.utils.checkpoint_kinds import CheckpointMismatchError
    with pytest.raises(CheckpointMismatchError) as err:
        test_tool(KD_CFG, ckpts['other'], '--work-dir', str(tmp_path), '--cfg-options', NO_TEACHER)
    text = str(err.value)
    assert f"checkpoint={ckpts['other']!r}" in text and 'plain task-model checkpoint' in text
    assert "the student 'architecture' of SingleTeacherDistill" in text
    assert 'have other shapes' in text and 'Nothing was loaded' in text
    assert 'model' not in probe, 'evaluated anyway'


def test_test_py_refuses_a_checkpoint_with_no_matching_key(tmp_path, probe):
    from mmkd.utils.checkpoint_kinds import CheckpointMismatchError
    path = str(tmp_path / 'unrelated.pth')
    torch.save({'state_dict': {'encoder.layer.weight': torch.zeros(2)}}, path)
    with pytest.raises(CheckpointMismatchError) as err:
        test_tool(STUDENT_CFG, path, '--work-dir', str(tmp_path))
    assert repr(path) in str(err.value) and 'are not in the file' in str(err.value)
    assert 'model' not in probe


def test_train_py_resume_refuses_a_plain_student_checkpoint(ckpts, probe, tmp_path):
    """Was: "resumed iter 2", random student weights kept, exit 0."""
    from mmkd.utils.checkpoint_kinds import CheckpointMismatchError
    with pytest.raises(CheckpointMismatchError) as err:
        train(KD_CFG, '--work-dir', str(tmp_path), '--resume', ckpts['student'], '--cfg-options',
              NO_TEACHER, *FAST)
    text = str(err.value)
    assert f"--resume={ckpts['student']!r}" in text and 'plain task-model checkpoint' in text
    assert 'not a checkpoint of this SingleTeacherDistill run' in text
    assert f"load_from={ckpts['student']}" in text
    assert 'model' not in probe


def test_train_py_resume_refuses_a_converted_student(ckpts, probe, tmp_path):
    from mmkd.utils.checkpoint_kinds import CheckpointMismatchError
    with pytest.raises(CheckpointMismatchError) as err:
        train(STUDENT_CFG, '--work-dir', str(tmp_path), '--resume', ckpts['converted'],
              '--cfg-options', *FAST)
    text = str(err.value)
    assert repr(ckpts['converted']) in text and 'convert_kd_ckpt_to_student.py' in text
    assert 'holds weights only' in text and 'load_from=' in text


def test_load_from_a_plain_student_starts_distillation_from_its_weights(ckpts, probe, tmp_path):
    train(KD_CFG, '--work-dir', str(tmp_path), '--cfg-options', NO_TEACHER,
          f"load_from={ckpts['student']}", *FAST)
    assert probe['iter'] == 0  # a new run, not a resume
    _assert_same(probe['state'], _file_state(ckpts['student']), prefix='architecture.')
    log = open(next(osp.join(r, f) for r, _, fs in os.walk(tmp_path) for f in fs
                    if f.endswith('.log'))).read()
    assert "loaded into the student 'architecture' of SingleTeacherDistill: all 122" in log


def test_load_from_another_model_is_refused_unless_partial_loading_is_asked(ckpts, probe,
                                                                           tmp_path):
    from mmkd.utils.checkpoint_kinds import CheckpointMismatchError
    with pytest.raises(CheckpointMismatchError) as err:
        train(KD_CFG, '--work-dir', str(tmp_path / 'a'), '--cfg-options', NO_TEACHER,
              f"load_from={ckpts['other']}", *FAST)
    assert f"load_from={ckpts['other']!r}" in str(err.value) and 'other shapes' in str(err.value)
    assert 'load_from_strict=False' in str(err.value)
    assert 'model' not in probe
    # Fine-tuning from a model with another head is a partial load on purpose: asked for,
    # the tensors that fit are loaded and the others are listed in a warning.
    train(KD_CFG, '--work-dir', str(tmp_path / 'b'), '--cfg-options', NO_TEACHER,
          f"load_from={ckpts['other']}", 'load_from_strict=False', *FAST)
    file_state, own = _file_state(ckpts['other']), probe['state']
    fitting = {k: v for k, v in file_state.items()
               if own[f'architecture.{k}'].shape == v.shape}
    assert 0 < len(fitting) < len(file_state)
    _assert_same(own, fitting, prefix='architecture.')
    log = open(next(osp.join(r, f) for r, _, fs in os.walk(tmp_path / 'b') for f in fs
                    if f.endswith('.log'))).read()
    assert f'{len(fitting)} tensors matched; NOT loaded (non-strict): ' in log


def test_bare_resume_in_an_empty_work_dir_stops(tmp_path, probe):
    """Was: "Auto resumed from the latest checkpoint None", then a run from scratch."""
    from mmkd.engine.runner_checkpoints import NoCheckpointToResume
    with pytest.raises(NoCheckpointToResume) as err:
        train(KD_CFG, '--work-dir', str(tmp_path), '--resume', '--cfg-options', NO_TEACHER, *FAST)
    text = str(err.value)
    assert repr(str(tmp_path)) in text and 'last_checkpoint' in text
    assert '--resume auto' in text and 'without --resume' in text
    assert 'model' not in probe


def test_resume_auto_in_an_empty_work_dir_says_it_starts_from_scratch(tmp_path, probe):
    train(KD_CFG, '--work-dir', str(tmp_path), '--resume', 'auto', '--cfg-options', NO_TEACHER,
          *FAST)
    assert probe['iter'] == 0
    log = open(next(osp.join(r, f) for r, _, fs in os.walk(tmp_path) for f in fs
                    if f.endswith('.log'))).read()
    assert f'--resume auto: no checkpoint in {tmp_path} (no last_checkpoint), starting from scratch' in log


def test_resume_auto_and_bare_resume_continue_an_existing_run(ckpts, probe, tmp_path):
    import shutil
    work = tmp_path / 'work'
    shutil.copytree(ckpts['kd_work'], work)
    (work / 'last_checkpoint').write_text(str(work / 'iter_2.pth'))
    for flag in (['--resume', 'auto'], ['--resume']):
        train(KD_CFG, '--work-dir', str(work), *flag, '--cfg-options', NO_TEACHER, *FAST)
        assert probe['iter'] == 2
        _assert_same(probe['state'], _file_state(ckpts['kd']))


def test_resume_when_last_checkpoint_names_a_missing_file(tmp_path, probe):
    from mmkd.engine.runner_checkpoints import NoCheckpointToResume
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_8.pth'))
    with pytest.raises(NoCheckpointToResume) as err:
        train(KD_CFG, '--work-dir', str(tmp_path), '--resume', '--cfg-options', NO_TEACHER)
    assert 'iter_8.pth' in str(err.value) and 'does not exist' in str(err.value)
    assert 'last_checkpoint' in str(err.value)


def test_resume_of_a_directory(tmp_path, probe):
    from mmkd.utils.checkpoint_kinds import CheckpointMismatchError
    with pytest.raises(CheckpointMismatchError, match='is a directory; pass a checkpoint file'):
        train(KD_CFG, '--work-dir', str(tmp_path), '--resume', str(tmp_path), '--cfg-options',
              NO_TEACHER)


def test_resume_of_another_configs_checkpoint_names_the_missing_tensors(ckpts, probe, tmp_path):
    from mmkd.utils.checkpoint_kinds import CheckpointMismatchError
    with pytest.raises(CheckpointMismatchError) as err:
        train(FITNET_CFG, '--work-dir', str(tmp_path), '--resume', ckpts['kd'], '--cfg-options',
              NO_TEACHER, *FAST)
    text = str(err.value)
    assert f"--resume={ckpts['kd']!r}" in text and 'of another config' in text
    assert 'distiller.connectors.' in text and 'not in the file' in text
    assert 'model' not in probe


def test_resume_with_other_optimizer_groups_names_file_and_sizes(ckpts, probe, tmp_path):
    """Was: torch's "loaded state dict has a different number of parameter groups"."""
    from mmkd.utils.checkpoint_kinds import CheckpointMismatchError
    with pytest.raises(CheckpointMismatchError) as err:
        train(KD_CFG, '--work-dir', str(tmp_path), '--resume', ckpts['kd'], '--cfg-options',
              NO_TEACHER, 'optim_wrapper.paramwise_cfg.bias_decay_mult=0.0', *FAST)
    text = str(err.value)
    assert f"--resume={ckpts['kd']!r}" in text and 'optimizer state does not fit' in text
    assert 'in the file [62]' in text and 'in this config 62 groups of 1 each' in text
    assert 'model' not in probe


def test_several_students_need_a_name(tmp_path):
    from mmkd.utils.checkpoint_kinds import CheckpointMismatchError, fit_checkpoint, read_checkpoint

    class TwoStudents(nn.Module):
        def __init__(self):
            super().__init__()
            self.students = nn.ModuleDict(dict(cnn=nn.Linear(2, 2), vit=nn.Linear(2, 3)))

    model, plain = TwoStudents(), tmp_path / 'plain.pth'
    torch.save({'state_dict': nn.Linear(2, 3).state_dict()}, plain)
    info = read_checkpoint(str(plain), 'checkpoint')
    with pytest.raises(CheckpointMismatchError) as err:
        fit_checkpoint(info, model)
    assert repr(str(plain)) in str(err.value) and "['cnn', 'vit']" in str(err.value)
    assert '--student NAME' in str(err.value)
    with pytest.raises(CheckpointMismatchError, match=r"--student 'mlp' is not a student"):
        fit_checkpoint(info, model, student='mlp')
    fit = fit_checkpoint(info, model, student='vit')
    assert sorted(fit.state) == ['students.vit.bias', 'students.vit.weight']
    with pytest.raises(CheckpointMismatchError, match='other shapes'):  # vit is 2->3, cnn 2->2
        fit_checkpoint(info, model, student='cnn')
    # a checkpoint with several students, for a plain model
    both = tmp_path / 'both.pth'
    torch.save({'state_dict': model.state_dict()}, both)
    info = read_checkpoint(str(both), 'checkpoint')
    assert info.kind == 'multi_student' and info.students == ['cnn', 'vit']
    with pytest.raises(CheckpointMismatchError, match=r"several students \['cnn', 'vit'\]"):
        fit_checkpoint(info, nn.Linear(2, 2))
    assert sorted(fit_checkpoint(info, nn.Linear(2, 2), student='cnn').state) == ['bias', 'weight']


def test_converter_refuses_what_is_no_distillation_checkpoint(ckpts, tmp_path):
    out = str(tmp_path / 'out.pth')
    for path, words in ((ckpts['converted'], 'a student converted by convert_kd_ckpt_to_student'),
                        (ckpts['student'], 'a plain task-model checkpoint')):
        with pytest.raises(SystemExit) as err:
            convert(path, out)
        assert f'src={path!r}' in str(err.value) and words in str(err.value)
        assert 'nothing to convert' in str(err.value)
    with pytest.raises(SystemExit, match='holds one student, not several; drop --student'):
        convert(ckpts['kd'], out, '--student', 'cnn')
    assert not osp.exists(out)
    multi = tmp_path / 'multi.pth'
    torch.save({'state_dict': {'students.cnn.w': torch.ones(1), 'students.vit.w': torch.ones(1)}},
               multi)
    with pytest.raises(SystemExit, match=r"pass --student NAME, one of \['cnn', 'vit'\]"):
        convert(str(multi), out)
    convert(str(multi), out, '--student', 'vit')
    assert list(_file_state(out)) == ['w']


# B. every read through the safe loader ------------------------------------------------

def test_malicious_pickle_through_resume_load_from_test_and_converter(evil, tmp_path, probe):
    """Was: refused by torch, with its hint to pass weights_only=False."""
    from mmkd.utils import UnsafeCheckpointError
    path, marker = evil
    for run in (lambda: train(KD_CFG, '--work-dir', str(tmp_path), '--resume', path,
                              '--cfg-options', NO_TEACHER),
                lambda: train(KD_CFG, '--work-dir', str(tmp_path), '--cfg-options', NO_TEACHER,
                              f'load_from={path}'),
                lambda: test_tool(KD_CFG, path, '--work-dir', str(tmp_path), '--cfg-options',
                                  NO_TEACHER)):
        with pytest.raises(UnsafeCheckpointError) as err:
            run()
        _assert_refused_unsafe(err.value, path, marker)
    assert "--resume='" in str(_raises(UnsafeCheckpointError, train, KD_CFG, '--work-dir',
                                       str(tmp_path), '--resume', path, '--cfg-options',
                                       NO_TEACHER))
    with pytest.raises(SystemExit) as err:
        convert(path, str(tmp_path / 'out.pth'))
    _assert_refused_unsafe(err.value, path, marker)
    assert 'model' not in probe


def _raises(kind, fn, *args):
    with pytest.raises(kind) as err:
        fn(*args)
    return err.value


def test_malicious_pickle_as_init_cfg_pretrained_during_a_run(evil, tmp_path, probe):
    """Any other local checkpoint mmengine reads during the run goes through mmkd's loader."""
    from mmengine.runner.checkpoint import CheckpointLoader

    from mmkd.engine.runner_checkpoints import serve_checkpoints
    from mmkd.utils import UnsafeCheckpointError
    path, marker = evil
    before = dict(CheckpointLoader._schemes)
    with serve_checkpoints({}), pytest.raises(UnsafeCheckpointError) as err:
        CheckpointLoader.load_checkpoint(path)
    _assert_refused_unsafe(err.value, path, marker)
    assert CheckpointLoader._schemes == before  # mmengine's loaders are back


@pytest.mark.parametrize('kind', sorted(BAD_FILE_WORDS))
def test_bad_files_as_teacher_ckpt_load_from_resume_and_test(bad_files, kind, tmp_path, probe):
    """Was: "failed finding central directory", EOFError, KeyError: 101."""
    path, words = bad_files[kind], BAD_FILE_WORDS[kind]
    cases = [
        (f'teacher_ckpt={path!r}', lambda: train(KD_CFG, '--work-dir', str(tmp_path),
                                                '--cfg-options', f'model.teacher_ckpt={path}')),
        (f'load_from={path!r}', lambda: train(KD_CFG, '--work-dir', str(tmp_path), '--cfg-options',
                                             NO_TEACHER, f'load_from={path}')),
        (f'--resume={path!r}', lambda: train(KD_CFG, '--work-dir', str(tmp_path), '--resume', path,
                                            '--cfg-options', NO_TEACHER)),
        (f'checkpoint={path!r}', lambda: test_tool(KD_CFG, path, '--work-dir', str(tmp_path),
                                                  '--cfg-options', NO_TEACHER)),
    ]
    from mmkd.utils.checkpoint import CheckpointFileError
    for named, run in cases:
        with pytest.raises(CheckpointFileError) as err:
            run()
        assert named in str(err.value) and words in str(err.value), str(err.value)
    assert 'model' not in probe


def test_checkpoint_of_another_model_as_teacher_ckpt(ckpts):
    """Was: torch's "size mismatch for backbone.conv1.weight" text."""
    from mmengine.config import Config

    from mmkd.registry import MODELS
    cfg = Config.fromfile(KD_CFG)
    cfg.model.teacher_ckpt = ckpts['converted']  # the w8 student, given as the w32 teacher
    with pytest.raises(RuntimeError) as err:
        MODELS.build(cfg.model)
    text = str(err.value)
    assert f"teacher_ckpt={ckpts['converted']!r} does not match the teacher" in text
    assert 'tensors have other shapes' in text and 'size mismatch' not in text


def test_cli_prints_one_error_line_not_a_traceback(tmp_path):
    rc, out = run_process('tools/train.py', KD_CFG, '--work-dir', str(tmp_path), '--resume')
    assert rc == 1 and 'Traceback' not in out, out[-2000:]
    assert f'error: --resume: there is no checkpoint to resume in the work dir {str(tmp_path)!r}' in out


# C. the logged total is the backpropagated sum ----------------------------------------

class _SpyOptimWrapper:
    """Records the loss handed to update_params (what is backpropagated), then steps."""

    def __new__(cls, params):
        from mmengine.optim import OptimWrapper

        class Spy(OptimWrapper):
            def update_params(self, loss, **kwargs):
                self.backpropagated = float(loss.detach())
                super().update_params(loss, **kwargs)

        return Spy(torch.optim.SGD(params, lr=0.0))


def _images(n, size, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8)
            for _ in range(n)]


def _cls_batch():
    from mmpretrain.structures import DataSample
    return dict(inputs=_images(4, 8), data_samples=[DataSample().set_gt_label(i) for i in range(4)])


def _det_batch(size=64):
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    samples = []
    for _ in range(2):
        s = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                                        scale_factor=(1.0, 1.0)))
        s.gt_instances = InstanceData(bboxes=torch.tensor([[4., 4., 30., 30.], [20., 10., 60., 50.]]),
                                      labels=torch.tensor([0, 1]))
        samples.append(s)
    return dict(inputs=_images(2, size), data_samples=samples)


def _seg_batch(size=64):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(1)
    samples = []
    for _ in range(2):
        s = SegDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size)))
        s.gt_sem_seg = PixelData(data=torch.randint(0, 5, (1, size, size), generator=g))
        samples.append(s)
    return dict(inputs=_images(2, size), data_samples=samples)


@pytest.mark.parametrize('config,batch,task_key', [
    (KD_CFG, _cls_batch, 'loss_cls'),            # mmpretrain: the head's own key is 'loss'
    (DET_CFG, _det_batch, 'loss_bbox'),           # mmdet
    (SEG_CFG, _seg_batch, 'decode.loss_ce'),      # mmseg
], ids=['mmpretrain', 'mmdet', 'mmseg'])
def test_logged_loss_is_the_sum_that_is_backpropagated(config, batch, task_key):
    """Was (mmpretrain): `loss: 0.14  distill.loss_kd: 14.94`, the classifier's 'loss'
    overwriting the total in mmengine's parse_losses."""
    from mmengine.config import Config

    from mmkd.registry import MODELS
    torch.manual_seed(0)
    cfg = Config.fromfile(config)
    cfg.model.teacher_ckpt = None
    model = MODELS.build(cfg.model)
    model.train()
    optim = _SpyOptimWrapper(model.parameters())
    log = {k: float(v) for k, v in model.train_step(batch(), optim).items()}
    terms = {k: v for k, v in log.items() if 'loss' in k and k != 'loss'}
    assert task_key in terms and any(k.startswith('distill.') for k in terms), log
    assert log['loss'] == pytest.approx(sum(terms.values()), rel=1e-5, abs=1e-6), log
    assert log['loss'] == pytest.approx(optim.backpropagated, rel=1e-6, abs=1e-7)
    assert log['loss'] > max(terms.values())  # the total, not one of its terms


def test_logged_loss_in_a_cli_run_is_the_sum_of_its_terms(ckpts):
    scalars = [osp.join(r, f) for r, _, fs in os.walk(ckpts['kd_work']) for f in fs
               if f == 'scalars.json']
    rows = [json.loads(line) for line in open(scalars[0]) if '"loss"' in line]
    assert len(rows) == 2
    for row in rows:
        assert 'loss_cls' in row and 'distill.loss_kd' in row
        assert row['loss'] == pytest.approx(row['loss_cls'] + row['distill.loss_kd'], rel=1e-4)


# D. leftovers of killed saves, file permissions ----------------------------------------

def _dead_pid():
    proc = subprocess.Popen([sys.executable, '-c', 'pass'])
    proc.wait()
    return proc.pid


def test_stale_part_files_are_removed_on_the_next_save(tmp_path):
    from mmkd.engine.atomic_backend import _host, atomic_write
    dead = tmp_path / f'.iter_2.pth.{_host()}.{_dead_pid()}.0badc0de.part'
    alive = tmp_path / f'.iter_2.pth.{_host()}.{os.getppid()}.0badc0de.part'
    other_host = tmp_path / f'.iter_2.pth.otherhost.{_dead_pid()}.0badc0de.part'
    legacy_old, legacy_new = tmp_path / '.iter_1.pth.abc_xyz1.part', tmp_path / '.iter_1.pth.q.part'
    for p in (dead, alive, other_host, legacy_old, legacy_new):
        p.write_bytes(b'half a checkpoint')
    os.utime(legacy_old, (1, 1))  # a temp file of the old format, untouched for decades
    atomic_write(b'checkpoint', tmp_path / 'iter_4.pth')
    left = sorted(p.name for p in tmp_path.iterdir())
    assert dead.name not in left and legacy_old.name not in left
    assert {alive.name, other_host.name, legacy_new.name, 'iter_4.pth'} == set(left)


def test_stale_part_files_are_removed_on_resume(ckpts, probe, tmp_path):
    import shutil

    from mmkd.engine.atomic_backend import _host
    work = tmp_path / 'work'
    shutil.copytree(ckpts['kd_work'], work)
    (work / 'last_checkpoint').write_text(str(work / 'iter_2.pth'))
    stale = work / f'.iter_4.pth.{_host()}.{_dead_pid()}.0badc0de.part'
    stale.write_bytes(b'killed half-way')
    train(KD_CFG, '--work-dir', str(work), '--resume', '--cfg-options', NO_TEACHER, *FAST)
    assert probe['iter'] == 2 and not stale.exists()


@pytest.mark.parametrize('umask,mode', [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_checkpoints_get_the_process_umask(tmp_path, ckpts, umask, mode):
    """Was: 0600 from mkstemp whatever the umask."""
    from mmkd.engine import atomic_torch_save, atomic_write
    old = os.umask(umask)
    try:
        atomic_write(b'x', tmp_path / 'iter_1.pth')
        atomic_torch_save({'w': torch.ones(1)}, tmp_path / 'cache.pt')
        convert(ckpts['kd'], str(tmp_path / 'student.pth'))
    finally:
        os.umask(old)
    for name in ('iter_1.pth', 'cache.pt', 'student.pth'):
        assert (tmp_path / name).stat().st_mode & 0o777 == mode, name


# E. obscure errors of the task packages, named ----------------------------------------

@pytest.fixture(scope='module')
def shapes(tmp_path_factory):
    from mmkd.datasets import generate_shapes
    root = tmp_path_factory.mktemp('shapes')
    generate_shapes(str(root), num_train=2, num_val=2, img_size=64, seed=1)
    return root


def _data_opts(root, det):
    opts = [f'{k}.dataset.data_root={root}/' for k in
            ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    if det:
        opts += [f'{k}.ann_file={root}/annotations/instances_val.json'
                 for k in ('val_evaluator', 'test_evaluator')]
    return opts + ['train_dataloader.batch_size=2']


def test_zero_byte_coco_json(shapes, tmp_path):
    """Was: pycocotools' "json.decoder.JSONDecodeError: Expecting value: line 1 column 1"."""
    import shutil
    root = tmp_path / 'shapes'
    shutil.copytree(shapes, root)
    ann = root / 'annotations' / 'instances_train.json'
    ann.write_bytes(b'')
    with pytest.raises(ValueError) as err:
        train(DET_CFG, '--work-dir', str(tmp_path / 'work'), '--cfg-options', NO_TEACHER,
              *_data_opts(root, det=True), 'train_cfg.max_epochs=1')
    text = str(err.value)
    assert "train_dataloader.dataset.ann_file='annotations/instances_train.json'" in text
    assert repr(f'{root}/annotations/instances_train.json') in text
    assert 'is empty (0 bytes)' in text and 'before any step' in text
    # The evaluator's file (CocoMetric) is named as the evaluator's key, not the data set's.
    ann.write_bytes(shapes.joinpath('annotations', 'instances_train.json').read_bytes())
    empty = tmp_path / 'empty_val.json'
    empty.write_bytes(b'')
    with pytest.raises(ValueError) as err:
        train(DET_CFG, '--work-dir', str(tmp_path / 'work2'), '--cfg-options', NO_TEACHER,
              *_data_opts(root, det=True), 'train_cfg.max_epochs=1',
              f'val_evaluator.ann_file={empty}')
    assert f"val_evaluator.ann_file={str(empty)!r}" in str(err.value)
    assert 'is empty (0 bytes)' in str(err.value) and 'CocoMetric' in str(err.value)


def test_mask_label_outside_the_classes(shapes, tmp_path):
    """Was: torch's "IndexError: Target 9 is out of bounds." from inside the loss."""
    import shutil

    import numpy as np
    from PIL import Image
    root = tmp_path / 'shapes'
    shutil.copytree(shapes, root)
    for mask in (root / 'seg_masks' / 'train').iterdir():
        Image.fromarray(np.full((64, 64), 9, dtype=np.uint8)).save(mask)
    with pytest.raises(ValueError) as err:
        train(SEG_CFG, '--work-dir', str(tmp_path / 'work'), '--cfg-options', NO_TEACHER,
              *_data_opts(root, det=False), 'train_cfg.max_iters=1', 'train_cfg.val_interval=10')
    text = str(err.value)
    assert 'label 9' in text and 'num_classes=5' in text and 'valid labels are 0..4' in text
    assert 'train_dataloader.dataset' in text and f'{root}/' in text
    assert "'seg_map_path': 'seg_masks/train'" in text
