"""MGD (semi-supervised distillation) through the CLI: a few training iterations of the
shapes demo config with random-weight teachers, tools/test.py on the student (the teachers
not loaded: their files are gone by then), and the student converted to a plain mmseg
checkpoint."""
import os

import pytest
import torch

from .cli import (
    check_test_run,
    config_dumping_predictions,
    last_checkpoint,
    load_predictions,
    logged_metric,
    run_tool,
)

CFG = 'configs/mgd_ssss/mgd-ssss_fcn-r18-w32-fcn-r34-w16_fcn-r18-w16_shapes-1of8_demo.py'
WIDE = 'mmkd::mgd_ssss/fcn_r18-w32_shapes-1of8_wide-teacher_demo.py'
DEEP = 'mmkd::mgd_ssss/fcn_r34-w16_shapes-1of8_deep-teacher_demo.py'
# the plain mmseg config of the student (the demo's architecture.cfg_path)
STUDENT_CFG = 'configs/mgd_ssss/fcn_r18-w16_shapes-1of8_supervised_demo.py'


def random_teacher(cfg_path, path, seed):
    from mmkd.utils import build_task_model
    torch.manual_seed(seed)
    teacher, _ = build_task_model(dict(cfg_path=cfg_path))
    torch.save({'state_dict': teacher.state_dict(), 'meta': {}}, path)
    return str(path)


@pytest.mark.slow
def test_mgd_ssss_train_and_test(tmp_path):
    from mmkd.datasets import generate_shapes
    root = tmp_path / 'shapes'
    generate_shapes(str(root), num_train=16, num_val=2, img_size=64, seed=1)
    wide = random_teacher(WIDE, tmp_path / 'wide.pth', 0)
    deep = random_teacher(DEEP, tmp_path / 'deep.pth', 1)
    work = str(tmp_path / 'work')
    opts = ['--cfg-options', f'model.wide_teacher_ckpt={wide}', f'model.deep_teacher_ckpt={deep}',
            f'train_dataloader.dataset.dataset.data_root={root}/',
            f'val_dataloader.dataset.data_root={root}/', f'test_dataloader.dataset.data_root={root}/',
            'train_dataloader.batch_size=2', 'val_dataloader.batch_size=2',
            'test_dataloader.batch_size=2']
    # the config with its predictions dumped at validation and at test (metrics unchanged)
    config, dumps = config_dumping_predictions(CFG, tmp_path)
    out = run_tool('tools/train.py', config, '--work-dir', work, *opts, 'train_cfg.max_iters=2',
                   'train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=2',
                   'default_hooks.logger.interval=1')
    for key in ('distill.loss_pixel_unlab_wide', 'distill.loss_pixel_lab_deep', 'distill.loss_semantic',
                'distill.loss_content', 'decode.loss_ce'):
        assert key in out, key
    val_metric, val_predictions = logged_metric(out, 'mIoU'), load_predictions(dumps['val'])
    ckpt = last_checkpoint(work)
    state = torch.load(ckpt, weights_only=True)['state_dict']
    assert not any('teacher' in k for k in state)
    assert any(k.startswith('architecture.') for k in state)
    metrics_file = str(tmp_path / 'metrics.json')
    os.remove(wide)  # testing never runs the teachers, so it does not read their files
    os.remove(deep)
    out = run_tool('tools/test.py', config, ckpt, '--work-dir', work, '--out', metrics_file, *opts)
    assert out.count('not loaded (tools/test.py evaluates the student only)') == 2, out[-3000:]
    check_test_run(out, metrics_file, 'mIoU', dumps['test'], val_predictions, val_metric,
                   det=False)

    # the student as a plain mmseg checkpoint: exactly the architecture.* tensors, and a
    # strict load into the model built from the student's own config
    student_file = str(tmp_path / 'student.pth')
    run_tool('tools/model_converters/convert_kd_ckpt_to_student.py', ckpt, student_file)
    converted = torch.load(student_file, weights_only=True)['state_dict']
    architecture = {k[len('architecture.'):]: v for k, v in state.items() if k.startswith('architecture.')}
    assert converted.keys() == architecture.keys()
    for key, value in converted.items():
        assert torch.equal(value, architecture[key]), key
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope('mmseg')
    model = MODELS.build(Config.fromfile(STUDENT_CFG).model)
    assert type(model).__name__ == 'EncoderDecoder'
    model.load_state_dict(converted, strict=True)
