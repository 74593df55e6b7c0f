# MGD (Qin et al., ECCV 2022) on the shapes data with 1/8 labels: the FCN R18-w16
# student learns from the 38 labelled images and the 262 unlabelled ones (CutMix
# pairs), guided by a wide (FCN R18-w32) and a deep (FCN R34-w16) teacher trained
# on the labelled images. Same schedule and seed as
# fcn_r18-w16_shapes-1of8_supervised_demo.py (1000 iterations, batch 4 labelled +
# 2x4 unlabelled). Loss weights: the official Cityscapes R18 ones (lambda_1=0.001
# with the official sum reduction, lambda_2=100).
_base_ = ['./fcn_r18-w16_shapes-1of8_supervised_demo.py']

wide_teacher_ckpt = 'work_dirs/mgd_ssss/fcn_r18-w32_shapes-1of8_wide-teacher_demo.pth'
deep_teacher_ckpt = 'work_dirs/mgd_ssss/fcn_r34-w16_shapes-1of8_deep-teacher_demo.pth'
model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='MultiGranularityDistill',
    architecture=dict(cfg_path='mmkd::mgd_ssss/fcn_r18-w16_shapes-1of8_supervised_demo.py'),
    wide_teacher=dict(cfg_path='mmkd::mgd_ssss/fcn_r18-w32_shapes-1of8_wide-teacher_demo.py'),
    deep_teacher=dict(cfg_path='mmkd::mgd_ssss/fcn_r34-w16_shapes-1of8_deep-teacher_demo.py'),
    wide_teacher_ckpt=wide_teacher_ckpt,
    deep_teacher_ckpt=deep_teacher_ckpt,
    logits_source='decode_head.conv_seg',
    # FCNHead with concat_input: the decoder feature before the classifier
    student_feat_source='decode_head.conv_cat',
    teacher_feat_source='decode_head.conv_cat',
    loss_pixel=dict(type='PixelConsistencyLoss', loss_weight=1.0),
    loss_semantic=dict(type='SemanticSensitiveLoss', loss_weight=0.001, reduction='sum'),
    loss_content=dict(type='ContentAwareLoss', loss_weight=100.0, pool_size=7),
    sup_loss=None,  # the student's own decode/auxiliary CE losses
    labelled_consistency=True,
    cutmix=dict(prop_range=(0.25, 0.5), n_boxes=3, random_aspect_ratio=True, prop_by_area=True,
                within_bounds=True, invert=True))
train_dataloader = dict(dataset={{_base_.semi_train_dataset}})
