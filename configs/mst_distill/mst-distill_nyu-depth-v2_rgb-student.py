# MST-Distill on NYU-Depth-V2 (RGB + depth, 40 classes + 'unlabeled' = 0, semantic
# segmentation); the student (an mmseg FCN) sees RGB. Dense variant of the official
# code: DenseGateNet router, MaskNet2d on feature maps, KL averaged over pixels.
# Data: convert the official NYU-Depth-V2_data.mat (h5py: 'images', 'depths',
# 'labels40', stored W-major) to data/nyu_depth_v2/images.npy (N, 3, 480, 640),
# depths.npy (N, 1, 480, 640), labels40.npy (N, 480, 640); split file
# metadata/NYU-Depth-V2_indices.csv. Official: batch 6, Adam 1e-4, label 0 ignored.
# Teachers: an RGB-D FCN (4-channel input, early fusion) and a depth FCN; the paper's
# FuseNet is not re-implemented.
_base_ = ['../_base_/default_runtime.py', '../_base_/schedules/mst_distill_official.py']
default_scope = 'mmseg'
data_root = 'data/nyu_depth_v2/'
seed = 0
classes = ('unlabeled', 'wall', 'floor', 'cabinet', 'bed', 'chair', 'sofa', 'table', 'door',
           'window', 'bookshelf', 'picture', 'counter', 'blinds', 'desk', 'shelves', 'curtain',
           'dresser', 'pillow', 'mirror', 'floor mat', 'clothes', 'ceiling', 'books',
           'refridgerator', 'television', 'paper', 'towel', 'shower curtain', 'box',
           'whiteboard', 'person', 'night stand', 'toilet', 'sink', 'lamp', 'bathtub', 'bag',
           'otherstructure', 'otherfurniture', 'otherprop')
dataset = dict(
    type='mmkd.MultiModalArrayDataset', data_root=data_root,
    modalities=dict(img='images.npy', depth='depths.npy'), label_file='labels40.npy',
    indices_csv='metadata/NYU-Depth-V2_indices.csv', indices_group=seed,
    minmax=dict(img='channel', depth='channel'),  # official min-max normalisation
    mmap=True, classes=classes)
train_dataloader = dict(
    batch_size=6, num_workers=4,
    dataset=dict(dataset, split='train', pipeline=[
        dict(type='mmkd.PackMultiModalInputs', keys=('img', 'depth'), task='seg')]),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=6, num_workers=4,
    dataset=dict(dataset, split='val', pipeline=[
        dict(type='mmkd.PackMultiModalInputs', keys='img', task='seg')]),
    sampler=dict(type='DefaultSampler', shuffle=False))
test_dataloader = dict(val_dataloader, dataset=dict(val_dataloader['dataset'], split='test'))
# MSTStageHook keeps the MaskNets of the stage-2 epoch with the lowest val loss, as the
# official code; that validation runs the teachers, so it reads both modalities.
masknet_val_dataloader = dict(val_dataloader, dataset=dict(val_dataloader['dataset'], pipeline=[
    dict(type='mmkd.PackMultiModalInputs', keys=('img', 'depth'), task='seg')]))
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'], ignore_index=0)
test_evaluator = val_evaluator
randomness = dict(seed=seed)
# The official code keeps the student of the epoch with the lowest val loss; here the
# checkpoint with the best val metric is kept.
default_hooks = dict(checkpoint=dict(interval=10, max_keep_ckpts=2, save_best='auto'))


def fcn(in_channels, data_preprocessor):
    return dict(
        type='EncoderDecoder',
        data_preprocessor=data_preprocessor,
        backbone=dict(type='ResNetV1c', depth=18, in_channels=in_channels, num_stages=4,
                      out_indices=(0, 1, 2, 3), dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1),
                      norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False,
                      style='pytorch', contract_dilation=True),
        decode_head=dict(type='FCNHead', in_channels=512, in_index=3, channels=128,
                         num_convs=2, concat_input=True, dropout_ratio=0.1, num_classes=41,
                         ignore_index=0, norm_cfg=dict(type='BN', requires_grad=True),
                         align_corners=False,
                         loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False,
                                          loss_weight=1.0, avg_non_ignore=True)),
        train_cfg=dict(),
        test_cfg=dict(mode='whole'))


seg_pp = dict(type='SegDataPreProcessor', mean=[0.0], std=[1.0], bgr_to_rgb=False,
              pad_val=0, seg_pad_val=0, size_divisor=32)
masknets = [dict(layer='decode_head.convs', type='MaskNet2d', channels=128, num_heads=3),
            dict(layer='backbone.layer4', type='MaskNet2d', channels=512, num_heads=3,
                 hidden_dim_factor=0.125)]
model = dict(
    _scope_='mmkd',
    type='MultiTeacherDistill',
    architecture=dict(fcn(3, dict(seg_pp, mean=[0.0] * 3, std=[1.0] * 3)), _scope_='mmseg'),
    student_input_key='img',
    student_logits='decode_head.conv_seg',
    teachers=dict(
        rgbd=dict(model=dict(fcn(4, dict(type='mmkd.MultiModalDataPreprocessor',
                                         modalities=dict(img=dict(), depth=dict()),
                                         concat=True)), _scope_='mmseg'),
                  input_key=['img', 'depth'], logits_source='decode_head.conv_seg',
                  masknets=masknets),
        depth=dict(model=dict(fcn(1, seg_pp), _scope_='mmseg'), input_key='depth',
                   logits_source='decode_head.conv_seg', masknets=masknets)),
    combiner=dict(type='MSTRouter', num_classes=41, topk=1, tau=4.0, w_kl=1.0, w_lb=1.0,
                  lb_mode='KL', dense=True),
    cotrain_teachers=True,
    stage='cotrain')
