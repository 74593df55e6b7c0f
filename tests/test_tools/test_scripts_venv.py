"""tools/{dist,slurm}_{train,test}.sh pick their interpreter without an activated venv:
``$PYTHON`` when set, else the repository's ``.venv/bin/python``, else ``python`` on PATH.

Each script is copied into a fake checkout whose ``.venv/bin/python`` (and ``srun``) are
shell scripts that print what they were asked to run, so nothing is launched.
"""
import os
import os.path as osp
import shutil
import stat
import subprocess

import pytest

from .cli import ROOT

SCRIPTS = {  # script -> (positional arguments, the tool it runs, what follows the tool)
    'dist_train.sh': (['cfg.py', '2'], 'train.py', ['cfg.py', '--launcher', 'pytorch']),
    'dist_test.sh': (['cfg.py', 'ck.pth', '2'], 'test.py',
                     ['cfg.py', 'ck.pth', '--launcher', 'pytorch']),
    'slurm_train.sh': (['part', 'job', 'cfg.py', 'wd'], 'train.py',
                       ['cfg.py', '--work-dir=wd', '--launcher=slurm']),
    'slurm_test.sh': (['part', 'job', 'cfg.py', 'ck.pth'], 'test.py',
                      ['cfg.py', 'ck.pth', '--launcher=slurm']),
}


def write_exe(path, text):
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(text)
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(path)


def fake_python(path, tag, has_torch=True):
    """A 'python' that answers the scripts' torch check and prints one line per run."""
    check = 'exit 0' if has_torch else 'exit 1'
    return write_exe(path, '#!/bin/sh\n'
                           f'if [ "$1" = -c ]; then {check}; fi\n'
                           f'printf "{tag}"; for a in "$@"; do printf " [%s]" "$a"; done; echo\n')


@pytest.fixture
def checkout(tmp_path):
    """A copy of tools/*.sh in an otherwise empty checkout, an srun that runs its command
    (after its own options) and a PATH with only the basic utilities and that srun."""
    repo = tmp_path / 'repo'
    os.makedirs(repo / 'tools')
    for name in [*SCRIPTS, 'pick_python.sh']:  # the scripts source pick_python.sh
        shutil.copy(osp.join(ROOT, 'tools', name), repo / 'tools' / name)
    bin_dir = tmp_path / 'bin'
    # srun: print its arguments, drop `-p PARTITION` and the options after it, then run
    # the interpreter line as srun would on each node
    write_exe(bin_dir / 'srun', '#!/bin/bash\n'
                                'echo "SRUN $*"\n'
                                'shift 2\n'
                                'while [ "${1#-}" != "$1" ]; do shift; done\n'
                                'exec "$@"\n')
    for tool in ('bash', 'sh', 'dirname', 'printf', 'echo'):
        found = shutil.which(tool)
        if found:
            os.symlink(found, bin_dir / tool)
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHON', 'MMKD_DRY_RUN', 'VIRTUAL_ENV')}
    env['PATH'] = str(bin_dir)
    return dict(repo=repo, bin=bin_dir, env=env)


def run_script(checkout, name, extra=(), env=None):
    args, _, _ = SCRIPTS[name]
    proc = subprocess.run([shutil.which('bash'), str(checkout['repo'] / 'tools' / name), *args,
                           *extra], capture_output=True, text=True, timeout=60,
                          env={**checkout['env'], **(env or {})})
    return proc.returncode, proc.stdout, proc.stderr


def interpreter_line(stdout, tag):
    lines = [line for line in stdout.splitlines() if line.startswith(tag)]
    assert len(lines) == 1, stdout
    return lines[0]


@pytest.mark.parametrize('name', sorted(SCRIPTS))
def test_uses_the_checkouts_venv_python(checkout, name):
    venv_python = fake_python(checkout['repo'] / '.venv' / 'bin' / 'python', 'VENV')
    fake_python(checkout['bin'] / 'python', 'PATH-PYTHON')  # must not be chosen
    rc, out, err = run_script(checkout, name, extra=['--amp', 'a b'])
    assert rc == 0, out + err
    line = interpreter_line(out, 'VENV')
    _, tool, after = SCRIPTS[name]
    tool_path = str(checkout['repo'] / 'tools' / tool)
    if name.startswith('dist_'):
        assert line.startswith('VENV [-m] [torch.distributed.run]'), line
        assert '[--nproc_per_node=2]' in line
    else:
        assert line.startswith(f'VENV [-u] [{tool_path}]'), line
        assert 'SRUN -p part --job-name=job' in out
    # the tool, its own arguments and the user's extra ones, one argument each ('a b' kept)
    assert ' '.join(f'[{a}]' for a in [tool_path, *after]) in line
    assert line.endswith('[--amp] [a b]'), line
    assert 'PATH-PYTHON' not in out
    assert f'python: {venv_python}' in err


@pytest.mark.parametrize('name', sorted(SCRIPTS))
def test_python_env_var_wins_over_the_venv(checkout, tmp_path, name):
    fake_python(checkout['repo'] / '.venv' / 'bin' / 'python', 'VENV')
    chosen = fake_python(tmp_path / 'other' / 'python3', 'CHOSEN')
    rc, out, err = run_script(checkout, name, env=dict(PYTHON=chosen))
    assert rc == 0, out + err
    interpreter_line(out, 'CHOSEN')
    assert not any(line.startswith('VENV') for line in out.splitlines()), out


@pytest.mark.parametrize('name', sorted(SCRIPTS))
def test_without_a_venv_falls_back_to_python_on_path(checkout, name):
    fake_python(checkout['bin'] / 'python', 'PATH-PYTHON')
    rc, out, err = run_script(checkout, name)
    assert rc == 0, out + err
    interpreter_line(out, 'PATH-PYTHON')
    assert 'python: python' in err


@pytest.mark.parametrize('name', ['dist_train.sh', 'dist_test.sh'])
def test_dist_scripts_stop_when_the_interpreter_has_no_torch(checkout, name):
    fake_python(checkout['bin'] / 'python', 'PATH-PYTHON', has_torch=False)
    rc, out, err = run_script(checkout, name)
    assert rc == 1
    assert 'PATH-PYTHON' not in out  # nothing was launched
    assert f"{name}: 'python' cannot import torch" in err
    assert "Run 'make install'" in err and str(checkout['repo'] / '.venv') in err
    assert 'set PYTHON' in err


@pytest.mark.parametrize('name', ['slurm_train.sh', 'slurm_test.sh'])
def test_slurm_scripts_warn_when_the_interpreter_has_no_torch(checkout, name):
    # only a warning: the compute nodes may have what the submitting node lacks
    fake_python(checkout['bin'] / 'python', 'PATH-PYTHON', has_torch=False)
    rc, out, err = run_script(checkout, name)
    assert rc == 0, out + err
    assert f"{name}: warning: 'python' cannot import torch here" in err
    interpreter_line(out, 'PATH-PYTHON')


@pytest.mark.parametrize('name', sorted(SCRIPTS))
def test_missing_arguments_print_the_usage(checkout, name):
    proc = subprocess.run([shutil.which('bash'), str(checkout['repo'] / 'tools' / name), 'cfg.py'],
                          capture_output=True, text=True, timeout=60, env=checkout['env'])
    assert proc.returncode == 2
    assert f'usage: bash tools/{name}' in proc.stderr


@pytest.mark.parametrize('name', sorted(SCRIPTS))
def test_dry_run_of_the_real_checkout_names_its_venv(name):
    """MMKD_DRY_RUN=1 on the real scripts prints the command with this checkout's
    .venv/bin/python (the one `make install` made), and launches nothing."""
    venv_python = osp.join(ROOT, '.venv', 'bin', 'python')
    if not os.access(venv_python, os.X_OK):
        pytest.skip('this checkout has no .venv (make install creates it)')
    args, tool, _ = SCRIPTS[name]
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHON', 'VIRTUAL_ENV')}
    # a PATH without the venv: what a user gets when they have not activated it
    env.update(MMKD_DRY_RUN='1', PATH='/usr/bin:/bin')
    proc = subprocess.run(['bash', osp.join('tools', name), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    words = proc.stdout.split()
    if name.startswith('slurm_'):
        assert words[:3] == ['srun', '-p', 'part'], words
        assert words[words.index('--kill-on-bad-exit=1') + 1] == venv_python, words
    else:
        assert words[:3] == [venv_python, '-m', 'torch.distributed.run'], words
    assert f'python: {venv_python}' in proc.stderr
    assert osp.join(ROOT, 'tools', tool) in words
