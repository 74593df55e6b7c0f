"""Analysis tools: linear CKA against an independent formula, and every picture on a demo
work dir (a FitNet+KD digits run of 2 iterations) or on models with random weights."""
import importlib.util
import json
import os.path as osp

import numpy as np
import pytest
import torch

from .cli import ROOT, last_checkpoint, run_tool

FITNET_CFG = 'configs/fitnet/fitnet_resnet18-w32_resnet18-w8_digits-10pct_demo.py'
ACAM_SEG_CFG = 'configs/acam_kd/acam-kd_logits_fcn-r18_fcn-r18-w16_shapes_demo.py'
MGD_DET_CFG = 'configs/mgd/mgd_fpn_retinanet-r18_retinanet-r18-w16_shapes_demo.py'


def load_tool(name):
    path = osp.join(ROOT, 'tools', 'analysis_tools', f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'analysis_tool_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def png_size(path):
    """(width, height) of a PNG, read back with PIL."""
    from PIL import Image
    with Image.open(path) as img:
        assert img.format == 'PNG'
        return img.size


def check_png(path, width, height, min_bytes=10_000):
    assert osp.isfile(path), path
    assert osp.getsize(path) > min_bytes, f'{path} is only {osp.getsize(path)} bytes'
    assert png_size(path) == (width, height)
    from PIL import Image
    with Image.open(path) as img:
        pixels = np.asarray(img.convert('L'), dtype=np.float32)
    assert pixels.std() > 5, 'the picture is (almost) blank'


# ------------------------------------------------------------------ linear CKA, golden
def hsic_cka(x, y):
    """CKA from the HSIC definition, written independently: centring matrix H, Gram
    matrices of the raw features, tr(K H L H) normalised (Kornblith et al. 2019, Eq. 3-4)."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k, gram_l = x @ x.T, y @ y.T

    def hsic(a, b):
        return np.trace(a @ h @ b @ h) / (n - 1) ** 2

    return hsic(k, gram_l) / np.sqrt(hsic(k, k) * hsic(gram_l, gram_l))


def test_linear_cka_golden_values():
    cka = load_tool('feature_cka')
    # one feature each: CKA is the squared Pearson correlation. x = (1, 2, 3),
    # y = (1, 2, 4): centred (-1, 0, 1) and (-4/3, -1/3, 5/3), x.y = 3, |x|^2 = 2,
    # |y|^2 = 14/3, so CKA = 9 / (2 * 14/3) = 27/28.
    x = torch.tensor([[1.0], [2.0], [3.0]])
    y = torch.tensor([[1.0], [2.0], [4.0]])
    assert cka.linear_cka(x, y) == pytest.approx(27 / 28, abs=1e-12)

    rng = np.random.default_rng(0)
    a = rng.normal(size=(12, 7))
    b = a @ rng.normal(size=(7, 5)) + 0.5 * rng.normal(size=(12, 5))
    c = rng.normal(size=(12, 3, 2, 2))  # feature maps are flattened per sample
    for u, v in ((a, b), (a, c), (b, c)):
        assert cka.linear_cka(torch.tensor(u), torch.tensor(v)) == pytest.approx(
            hsic_cka(u, v), abs=1e-10)
    # invariant to an orthogonal transform and an isotropic scale; 1 for itself
    q, _ = np.linalg.qr(rng.normal(size=(7, 7)))
    assert cka.linear_cka(torch.tensor(a), torch.tensor(3.0 * a @ q)) == pytest.approx(1.0, abs=1e-10)
    # not invariant to an anisotropic scale
    assert cka.linear_cka(torch.tensor(a), torch.tensor(a * np.arange(1, 8))) < 0.999
    # the matrix form agrees with the pairwise one
    m = cka.cka_matrix({'t0': torch.tensor(a), 't1': torch.tensor(b)},
                       {'s0': torch.tensor(c)})
    assert np.allclose(m, [[hsic_cka(a, c)], [hsic_cka(b, c)]], rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match='same number of samples'):
        cka.linear_cka(torch.zeros(3, 2), torch.zeros(4, 2))


# ------------------------------------------------------------------ demo work dir
@pytest.fixture(scope='module')
def demo_run(tmp_path_factory):
    """FitNet + logit KD on digits, 2 iterations, from a random-weight teacher file."""
    from mmengine.config import Config

    from mmkd.utils import build_task_model
    tmp = tmp_path_factory.mktemp('analysis')
    torch.manual_seed(0)
    cfg = Config.fromfile(osp.join(ROOT, 'configs/kd/teacher_resnet18-w32_digits_demo.py'))
    teacher, _ = build_task_model(dict(cfg.model, _scope_='mmpretrain'))
    teacher_ckpt = str(tmp / 'teacher.pth')
    torch.save({'state_dict': teacher.state_dict(), 'meta': {}}, teacher_ckpt)
    work = str(tmp / 'work')
    run_tool('tools/train.py', FITNET_CFG, '--work-dir', work, '--cfg-options',
             f'model.teacher_ckpt={teacher_ckpt}', 'train_cfg.max_iters=2',
             'train_cfg.val_interval=2', 'default_hooks.logger.interval=1',
             'train_dataloader.batch_size=8')
    return dict(work=work, ckpt=last_checkpoint(work), teacher_ckpt=teacher_ckpt, tmp=tmp)


@pytest.mark.slow
def test_visualize_features(demo_run, tmp_path):
    tool = load_tool('visualize_features')
    out = str(tmp_path / 'features.png')
    tool.main([osp.join(ROOT, FITNET_CFG), 'val:3', '--checkpoint', demo_run['ckpt'],
               '--teacher-ckpt', demo_run['teacher_ckpt'], '--connector', '--out', out])
    # rows: the recorders on both sides, 'logits' and 'stage4'; 3 panels of 240 px each
    check_png(out, 3 * tool.PANEL_PX, 2 * tool.PANEL_PX + tool.TITLE_PX)

    # an image file: the digits pipeline has no loader, the tool resizes to img_size
    import cv2
    img_file = str(tmp_path / 'digit.png')
    cv2.imwrite(img_file, np.tile(np.linspace(0, 255, 40, dtype=np.uint8), (40, 1)))
    out2 = str(tmp_path / 'features_file.png')
    tool.main([osp.join(ROOT, FITNET_CFG), img_file, '--checkpoint', demo_run['ckpt'],
               '--teacher-ckpt', 'none', '--recorders', 'stage4', '--out', out2])
    check_png(out2, 3 * tool.PANEL_PX, tool.PANEL_PX + tool.TITLE_PX)

    with pytest.raises(SystemExit, match='not on both sides'):
        tool.main([osp.join(ROOT, FITNET_CFG), 'val:0', '--teacher-ckpt', 'none',
                   '--recorders', 'stage5', '--out', out2])


@pytest.mark.slow
def test_feature_cka(demo_run, tmp_path):
    tool = load_tool('feature_cka')
    out_dir = str(tmp_path / 'cka')
    result = tool.main([osp.join(ROOT, FITNET_CFG), '--checkpoint', demo_run['ckpt'],
                        '--teacher-ckpt', demo_run['teacher_ckpt'], '--num-samples', '40',
                        '--out-dir', out_dir])
    with open(osp.join(out_dir, 'cka.json')) as f:
        saved = json.load(f)
    stages = [f'backbone.layer{i}' for i in range(1, 5)]
    assert saved['teacher_layers'] == stages + ['head.fc']  # stages + the recorded modules
    assert saved['student_layers'] == stages + ['head.fc']
    assert saved['num_samples'] == 40
    matrix = np.array(saved['cka'])
    assert matrix.shape == (5, 5) and ((matrix >= 0) & (matrix <= 1 + 1e-9)).all()
    assert saved['cka'] == result['cka']
    assert set(saved['best_teacher_layer']) == set(saved['student_layers'])
    check_png(osp.join(out_dir, 'cka.png'), tool.MARGIN_W_PX + 5 * tool.CELL_PX,
              tool.MARGIN_H_PX + 5 * tool.CELL_PX)


@pytest.mark.slow
def test_plot_curves_on_demo_work_dir(demo_run, tmp_path):
    out = str(tmp_path / 'curves.png')
    log = run_tool('tools/analysis_tools/plot_curves.py', demo_run['work'], '--out', out)
    keys = log.strip().splitlines()[-1].split('(', 1)[1].rstrip(')').split(', ')
    assert {'loss', 'distill.loss_kd', 'distill.loss_fitnet'} <= set(keys)
    check_png(out, 770, round(2.4 * len(keys) * 110), min_bytes=5_000)  # 7 x 2.4k in at 110 dpi


@pytest.fixture(scope='module')
def shapes_image(tmp_path_factory):
    import cv2
    rng = np.random.default_rng(0)
    img = (rng.random((128, 128, 3)) * 60).astype(np.uint8)
    cv2.rectangle(img, (20, 20), (60, 70), (0, 0, 255), -1)
    cv2.circle(img, (95, 90), 22, (0, 255, 0), -1)
    path = str(tmp_path_factory.mktemp('img') / 'shapes.png')
    cv2.imwrite(path, img)
    return path


@pytest.mark.slow
def test_visualize_masks_acam_kd(shapes_image, tmp_path):
    tool = load_tool('visualize_masks')
    out = str(tmp_path / 'acam.png')
    tool.main([osp.join(ROOT, ACAM_SEG_CFG), shapes_image, '--teacher-ckpt', 'none', '--out', out])
    # one ACAMKDLoss with M=5: input + 5 spatial masks + the channel-mask matrix
    check_png(out, 7 * tool.PANEL_PX, tool.PANEL_PX + tool.TITLE_PX)


@pytest.mark.slow
def test_visualize_masks_of_a_trained_acam_kd_work_dir(tmp_path):
    """The learned ACAM units of a demo work dir (2 iterations), on a val image of the demo."""
    from mmengine.config import Config

    from mmkd.datasets import generate_shapes

    from .cli import save_random_teacher
    root = str(tmp_path / 'shapes')
    generate_shapes(root, num_train=8, num_val=4, seed=1)
    data = [f'{k}.dataset.data_root={root}/' for k in
            ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    cfg = Config.fromfile(osp.join(ROOT, ACAM_SEG_CFG))
    teacher_ckpt, _ = save_random_teacher(cfg.model.teacher, tmp_path / 'teacher.pth')
    work = str(tmp_path / 'work')
    run_tool('tools/train.py', ACAM_SEG_CFG, '--work-dir', work, '--cfg-options',
             f'model.teacher_ckpt={teacher_ckpt}', 'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
             'train_dataloader.batch_size=2', *data)
    ckpt = last_checkpoint(work)
    tool = load_tool('visualize_masks')
    out_untrained, out_trained = str(tmp_path / 'init.png'), str(tmp_path / 'trained.png')
    common = [osp.join(ROOT, ACAM_SEG_CFG), 'val:0', '--teacher-ckpt', teacher_ckpt]
    tool.main(common + ['--out', out_untrained, '--cfg-options', *data])
    tool.main(common + ['--checkpoint', ckpt, '--out', out_trained, '--cfg-options', *data])
    for out in (out_untrained, out_trained):
        check_png(out, 7 * tool.PANEL_PX, tool.PANEL_PX + tool.TITLE_PX)
    # the checkpoint's ACAM units (two AdamW steps) give other masks than the initial ones
    from PIL import Image
    with Image.open(out_untrained) as a, Image.open(out_trained) as b:
        diff = np.abs(np.asarray(a.convert('L'), np.float32) - np.asarray(b.convert('L'), np.float32))
    assert diff.max() > 0


@pytest.mark.slow
def test_visualize_masks_mgd(shapes_image, tmp_path):
    tool = load_tool('visualize_masks')
    out = str(tmp_path / 'mgd.png')
    tool.main([osp.join(ROOT, MGD_DET_CFG), shapes_image, '--teacher-ckpt', 'none', '--draws', '2',
               '--out', out])
    # five MGDLoss levels (P3-P7): input + 2 random spatial masks each
    check_png(out, 3 * tool.PANEL_PX, 5 * tool.PANEL_PX + tool.TITLE_PX)

    with pytest.raises(SystemExit, match='no ACAMKDLoss, MGDLoss or MGDConnector'):
        tool.main([osp.join(ROOT, FITNET_CFG), 'val:0', '--teacher-ckpt', 'none', '--out', out])


def test_mgd_mask_sites_and_ratio():
    """The tool draws MGD's own masks: about lambda of the positions are masked."""
    from mmkd.models.connectors import MGDConnector
    from mmkd.models.distillers import ConfigurableDistiller
    tool = load_tool('visualize_masks')
    distiller = ConfigurableDistiller(
        student_recorders=dict(f=dict(type='ModuleOutputs', source='x')),
        teacher_recorders=dict(f=dict(type='ModuleOutputs', source='x')),
        connectors=dict(gen=dict(type='MGDConnector', student_channels=4, teacher_channels=8,
                                 lambda_mgd=0.65)),
        distill_losses=dict(loss_l2=dict(type='L2Loss'),
                            loss_mgd=dict(type='MGDLoss', student_channels=4, teacher_channels=8)),
        loss_forward_mappings=dict(
            loss_l2=dict(s_feature=dict(from_student=True, recorder='f', connector='gen'),
                         t_feature=dict(from_student=False, recorder='f')),
            loss_mgd=dict(preds_S=dict(from_student=True, recorder='f'),
                          preds_T=dict(from_student=False, recorder='f'))))
    sites = tool.mask_sites(distiller)
    assert [(s[0], s[1]) for s in sites] == [('loss_l2.s_feature (gen)', 'mgd_connector'),
                                             ('loss_mgd', 'mgd')]
    assert isinstance(sites[0][2], MGDConnector)
    torch.manual_seed(0)
    mask = sites[1][2].random_mask(torch.zeros(4, 4, 32, 32))
    assert mask.shape == (4, 1, 32, 32)
    assert 1 - float(mask.mean()) == pytest.approx(0.65, abs=0.05)
