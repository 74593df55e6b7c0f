# MST-Distill on AV-MNIST (image 28x28 + audio spectrogram 112x112, 10 classes); the
# student sees the image. Official pipeline: teachers are co-trained from scratch
# (stage 1, cotrain_teachers=True), then MaskNets, then the routed student stage.
# Data: the official AV-MNIST arrays under data/avmnist/ (image/{train,test}_data.npy,
# audio/{train,test}_data.npy, {train,test}_labels.npy: flattened rows) and the
# official split file metadata/AV-MNIST_indices.csv (60/20/20, column group_<seed>).
# Architectures are small generic stand-ins for the paper's LeNet5 / CNN-I /
# ThreeLayerCNN-A (not re-implemented here).
_base_ = ['../_base_/default_runtime.py', '../_base_/schedules/mst_distill_official.py']
default_scope = 'mmpretrain'
data_root = 'data/avmnist/'
seed = 0
dataset = dict(
    type='mmkd.MultiModalArrayDataset', data_root=data_root,
    modalities=dict(img=['image/train_data.npy', 'image/test_data.npy'],
                    audio=['audio/train_data.npy', 'audio/test_data.npy']),
    label_file=['train_labels.npy', 'test_labels.npy'],
    indices_csv='metadata/AV-MNIST_indices.csv', indices_group=seed,
    shapes=dict(img=(1, 28, 28), audio=(1, 112, 112)),
    minmax=dict(img='sample', audio='sample'),  # official: each 2-D row to [0, 1]
    classes=[str(i) for i in range(10)])
train_dataloader = dict(
    batch_size=512, num_workers=4,
    dataset=dict(dataset, split='train',
                 pipeline=[dict(type='mmkd.PackMultiModalInputs', keys=('img', 'audio'))]),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=512, num_workers=4,
    dataset=dict(dataset, split='val', pipeline=[dict(type='mmkd.PackMultiModalInputs', keys='img')]),
    sampler=dict(type='DefaultSampler', shuffle=False))
test_dataloader = dict(val_dataloader, dataset=dict(val_dataloader['dataset'], split='test'))
# MSTStageHook keeps the MaskNets of the stage-2 epoch with the lowest val loss, as the
# official code; that validation runs the teachers, so it reads both modalities.
masknet_val_dataloader = dict(val_dataloader, dataset=dict(
    val_dataloader['dataset'],
    pipeline=[dict(type='mmkd.PackMultiModalInputs', keys=('img', 'audio'))]))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator
randomness = dict(seed=seed)
# The official code keeps the student of the epoch with the lowest val loss; here the
# checkpoint with the best val metric is kept.
default_hooks = dict(checkpoint=dict(interval=10, max_keep_ckpts=2, save_best='auto'))

mm_pp = dict(type='mmkd.MultiModalDataPreprocessor', modalities=dict(img=dict(), audio=dict()))
model = dict(
    _scope_='mmkd',
    type='MultiTeacherDistill',
    architecture=dict(
        _scope_='mmpretrain', type='ImageClassifier',
        data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=10, mean=[0.0],
                               std=[1.0], to_rgb=False),
        backbone=dict(type='ResNet_CIFAR', depth=18, in_channels=1, stem_channels=16,
                      base_channels=16, out_indices=(3, )),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=10, in_channels=128)),
    student_input_key='img',
    student_logits='head.fc',
    teachers=dict(
        mm=dict(model=dict(type='mmkd.MultiModalClassifier', num_classes=10, hidden_dim=128,
                           encoders=dict(img=dict(type='ConvEncoder2d', in_channels=1, width=32,
                                                  out_dim=128),
                                         audio=dict(type='ConvEncoder2d', in_channels=1,
                                                    width=32, out_dim=128)),
                           data_preprocessor=mm_pp),
                input_key=['img', 'audio'], logits_source='fc2',
                masknets=[dict(layer='fusion', type='MaskNet1d', feat_dim=256, num_heads=3),
                          dict(layer='fc1', type='MaskNet1d', feat_dim=128, num_heads=3)]),
        audio=dict(model=dict(type='mmkd.MultiModalClassifier', num_classes=10, hidden_dim=128,
                              encoders=dict(audio=dict(type='ConvEncoder2d', in_channels=1,
                                                       width=32, out_dim=128)),
                              data_preprocessor=mm_pp),
                   input_key=['audio'], logits_source='fc2',
                   masknets=[dict(layer='fusion', type='MaskNet1d', feat_dim=128, num_heads=3),
                             dict(layer='fc1', type='MaskNet1d', feat_dim=128, num_heads=3)])),
    combiner=dict(type='MSTRouter', num_classes=10, topk=1, tau=4.0, w_kl=1.0, w_lb=1.0,
                  lb_mode='KL'),
    cotrain_teachers=True,
    stage='cotrain')
