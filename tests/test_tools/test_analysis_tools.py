"""Analysis tools: linear CKA against an independent formula, and every picture on a demo
work dir (a FitNet+KD digits run of 2 iterations) or on models with random weights."""
import glob
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


def test_cka_chance_level_golden_value():
    """Centred 1-D features have rank-1 Gram matrices (effective dimension 1), so the chance
    level is 1 / (n - 1) whatever the values: 0.5 for 3 samples."""
    cka = load_tool('feature_cka')
    x = torch.tensor([[1.0], [2.0], [3.0]])
    y = torch.tensor([[5.0], [-1.0], [0.5]])
    k, gram_l = cka.centered_gram(x), cka.centered_gram(y)
    assert cka.effective_dim(k) == pytest.approx(1.0, abs=1e-12)
    assert cka.chance_cka(k, gram_l) == pytest.approx(0.5, abs=1e-12)
    # isotropic features: d = tr(K)^2 / ||K||^2 computed with numpy from the raw features
    rng = np.random.default_rng(1)
    a = rng.normal(size=(20, 6))
    ac = a - a.mean(0)
    gram = ac @ ac.T
    d_np = np.trace(gram) ** 2 / (gram ** 2).sum()
    assert cka.effective_dim(torch.tensor(gram)) == pytest.approx(d_np, rel=1e-12)
    assert cka.chance_cka(torch.tensor(gram), torch.tensor(gram)) == pytest.approx(d_np / 19, rel=1e-12)


def independent_layers(n, p, q, seed):
    rng = np.random.default_rng(seed)
    return ({'t': torch.tensor(rng.normal(size=(n, p)))},
            {'s': torch.tensor(rng.normal(size=(n, q)))})


def test_cka_warns_when_few_samples_inflate_the_scores(capsys):
    """30 samples of 300-dim features: unrelated (independent) layers score about 0.91, as
    the chance level predicts (1 / (1 + n/p) for p = q), and the tool says so."""
    cka = load_tool('feature_cka')
    scores, chances = [], []
    for seed in range(5):
        teacher, student = independent_layers(30, 300, 300, seed)
        report = cka.cka_report(teacher, student)
        scores.append(report['cka'][0][0])
        chances.append(report['chance'][0][0])
        assert report['feature_dims'] == dict(teacher={'t': 300}, student={'s': 300})
    assert np.mean(scores) == pytest.approx(1 / (1 + 30 / 300), abs=0.02)  # biased upward
    assert np.mean(chances) == pytest.approx(np.mean(scores), abs=0.02)
    msg = cka.few_samples_warning(report, 30)
    assert msg is not None and msg.startswith('warning: too few samples')
    assert 'with 30 samples' in msg and 'teacher t' in msg and 'student s' in msg
    assert f'up to {report["chance"][0][0]:.2f}' in msg and 'raise --num-samples' in msg


def test_cka_does_not_warn_with_many_samples():
    """2000 samples of 8-dim features: unrelated layers score near 0 and nothing is said."""
    cka = load_tool('feature_cka')
    teacher, student = independent_layers(2000, 8, 8, seed=0)
    report = cka.cka_report(teacher, student)
    assert report['cka'][0][0] < 0.02
    assert report['chance'][0][0] == pytest.approx(1 / (1 + 2000 / 8), abs=0.002)
    assert cka.few_samples_warning(report, 2000) is None
    # the threshold is CHANCE_WARN: a pair just above it warns
    assert cka.CHANCE_WARN == 0.1
    teacher, student = independent_layers(60, 8, 8, seed=0)  # chance about 1 / (1 + 60/8)
    report = cka.cka_report(teacher, student)
    assert report['chance'][0][0] > 0.1
    assert cka.few_samples_warning(report, 60) is not None


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
    drawn = []
    draw = tool.draw

    def spy(*args, **kwargs):
        drawn.append(draw(*args, **kwargs))
        return drawn[-1]

    out = str(tmp_path / 'features.png')
    tool.draw = spy
    tool.main([osp.join(ROOT, FITNET_CFG), 'val:3', '--checkpoint', demo_run['ckpt'],
               '--teacher-ckpt', demo_run['teacher_ckpt'], '--connector', '--out', out])
    # logits row: bars, no colorbar; stage4 row: a colorbar on the teacher's and the student's map
    (_, colorbars), = drawn
    assert colorbars[0] == (None, None)
    assert all(cb is not None and cb.mappable.norm.vmax > cb.mappable.norm.vmin for cb in colorbars[1])
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
def test_feature_cka(demo_run, tmp_path, capsys):
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
    # 40 samples of features 256-4096 wide: the tool warns and says how high chance is
    out = capsys.readouterr().out
    chance = np.array(saved['chance_cka'])
    assert chance.shape == (5, 5) and chance.max() > tool.CHANCE_WARN
    assert saved['few_samples_warning'] and saved['few_samples_warning'] in out
    assert 'warning: too few samples' in out and f'up to {chance.max():.2f}' in out
    # the whole val set (359 digits): chance level is low, no warning
    out_dir = str(tmp_path / 'cka_all')
    tool.main([osp.join(ROOT, FITNET_CFG), '--checkpoint', demo_run['ckpt'],
               '--teacher-ckpt', demo_run['teacher_ckpt'], '--num-samples', '1000',
               '--out-dir', out_dir])
    with open(osp.join(out_dir, 'cka.json')) as f:
        saved = json.load(f)
    assert saved['num_samples'] == 359
    assert np.array(saved['chance_cka']).max() < tool.CHANCE_WARN
    assert saved['few_samples_warning'] is None
    assert 'warning' not in capsys.readouterr().out


@pytest.mark.slow
def test_plot_curves_on_demo_work_dir(demo_run, tmp_path):
    out = str(tmp_path / 'curves.png')
    log = run_tool('tools/analysis_tools/plot_curves.py', demo_run['work'], '--out', out)
    keys = log.strip().splitlines()[-1].split('(', 1)[1].rstrip(')').split(', ')
    assert {'loss', 'distill.loss_kd', 'distill.loss_fitnet'} <= set(keys)
    check_png(out, 770, round(2.4 * len(keys) * 110), min_bytes=5_000)  # 7 x 2.4k in at 110 dpi
    # the validation metric panel: one point, at the iteration validation ran after (2)
    assert keys[-1] == 'val accuracy/top1'
    logged = []
    for path in glob.glob(osp.join(demo_run['work'], '*', 'vis_data', 'scalars.json')):
        with open(path) as f:
            logged += [json.loads(line) for line in f if 'accuracy/top1' in line]
    assert len(logged) == 1
    curves = load_tool('plot_curves').main([demo_run['work'], '--out', str(tmp_path / 'c2.png')])
    assert curves['val']['accuracy/top1'][demo_run['work']] == ([2], [logged[0]['accuracy/top1']])


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


def write_scalars(work_dir, rows, stamp='20240101_000000'):
    folder = osp.join(str(work_dir), stamp, 'vis_data')
    import os
    os.makedirs(folder, exist_ok=True)
    with open(osp.join(folder, 'scalars.json'), 'w') as f:
        f.write('\n'.join(json.dumps(r) for r in rows) + '\n')


def test_plot_curves_draws_a_panel_per_validation_metric(tmp_path, capsys):
    """Epoch-based logs as mmengine writes them: validation rows carry the metrics and the
    epoch as ``step``; the panel puts them at the iteration validation ran after."""
    tool = load_tool('plot_curves')
    work = str(tmp_path / 'run')
    train = [dict(lr=0.01, loss=2.0 - 0.1 * i, loss_cls=1.0, **{'distill.loss_mgd': 0.5},
                  epoch=1 + i // 2, iter=5 * (i + 1), step=5 * (i + 1), time=0.1, data_time=0.0)
             for i in range(4)]
    val = [{'coco/bbox_mAP': 0.125, 'coco/bbox_mAP_50': 0.25, 'data_time': 0.0, 'time': 0.2, 'step': 1},
           {'coco/bbox_mAP': 0.375, 'coco/bbox_mAP_50': 0.5, 'data_time': 0.0, 'time': 0.2, 'step': 2}]
    write_scalars(work, train[:2] + val[:1] + train[2:] + val[1:])
    out = str(tmp_path / 'curves.png')
    curves = tool.main([work, '--out', out])
    assert list(curves['train']) == ['distill.loss_mgd', 'loss', 'loss_cls']
    assert curves['val']['coco/bbox_mAP'][work] == ([10, 20], [0.125, 0.375])
    assert curves['val']['coco/bbox_mAP_50'][work] == ([10, 20], [0.25, 0.5])
    printed = capsys.readouterr().out
    assert printed.strip().endswith('(distill.loss_mgd, loss, loss_cls, val coco/bbox_mAP, '
                                    'val coco/bbox_mAP_50)')
    check_png(out, 770, round(2.4 * 5 * 110), min_bytes=5_000)

    # the drawn panel holds the metric's values
    fig = tool.draw(curves)
    ax = fig.axes[3]
    assert ax.get_ylabel() == 'val coco/bbox_mAP'
    (line,) = ax.get_lines()
    assert list(line.get_xdata()) == [10, 20] and list(line.get_ydata()) == [0.125, 0.375]

    # --keys picks training keys and metrics; an unknown one names what exists
    curves = tool.main([work, '--keys', 'loss', 'coco/bbox_mAP', '--out', out])
    assert list(curves['train']) == ['loss'] and list(curves['val']) == ['coco/bbox_mAP']
    with pytest.raises(SystemExit, match=r"--keys \['acc'\] are not in the logs.*"
                                         r"validation metrics: \['coco/bbox_mAP', 'coco/bbox_mAP_50'\]"):
        tool.main([work, '--keys', 'acc', '--out', out])


def test_plot_curves_says_when_validation_has_not_run(tmp_path, capsys):
    tool = load_tool('plot_curves')
    work = str(tmp_path / 'run')
    # rows without `iter` (a hand-written log) count as training rows by their loss keys
    write_scalars(work, [dict(loss=1.0, step=1), dict(loss=0.5, iter=2, step=2)])
    curves = tool.main([work, '--out', str(tmp_path / 'c.png')])
    assert curves['val'] == {}
    assert curves['train']['loss'][work] == ([1, 2], [1.0, 0.5])
    assert 'note: no validation metrics in the logs' in capsys.readouterr().out


def test_visualize_features_maps_have_a_colour_scale():
    """Each map panel gets a colorbar spanning the map's own values (the L2 norm over
    channels here, computed independently); a vector (logits) gets bars and no colorbar."""
    tool = load_tool('visualize_features')
    torch.manual_seed(0)
    t = torch.randn(1, 4, 3, 3) * 5
    s = torch.randn(1, 2, 3, 3)
    image = np.linspace(0, 1, 24 * 24).reshape(24, 24)
    rows = [('feat', t, s, ''), ('logits', torch.randn(1, 10), torch.randn(1, 10), '')]
    fig, colorbars = tool.draw(rows, image, 'l2', 'title')
    (cb_t, cb_s), (cb_logits_t, cb_logits_s) = colorbars
    assert cb_logits_t is None and cb_logits_s is None
    for cb, x in ((cb_t, t), (cb_s, s)):
        l2 = np.sqrt((x[0].numpy() ** 2).sum(0))
        assert cb.ax in fig.axes
        assert cb.mappable.norm.vmin == pytest.approx(float(l2.min()), rel=1e-5)
        assert cb.mappable.norm.vmax == pytest.approx(float(l2.max()), rel=1e-5)
    # the teacher's and the student's scales are their own, not a shared one
    assert cb_t.mappable.norm.vmax > 2 * cb_s.mappable.norm.vmax
    assert len(fig.axes) == 2 * 3 + 2  # six panels and two colorbars
    import matplotlib.pyplot as plt
    plt.close(fig)
