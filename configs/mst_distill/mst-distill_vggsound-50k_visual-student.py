# MST-Distill on VGGSound-50k (pre-extracted features, 141 classes); the student sees
# the visual features. The official loader reads per-sample files
# (VGGS50K_features_normed/{visual,audio}_features/<name>_{v,a}Feature.npy and a
# class id per clip); stack them into data/vggsound50k/visual.npy (N, 10, 7, 7, 512),
# audio.npy (N, 10, 128) and labels.npy (N,) (the class id, the official target[:, 0, -1]).
# Official: batch 512, Adam 1e-4; the features are already normalised.
_base_ = ['./mst-distill_avmnist_image-student.py']
data_root = 'data/vggsound50k/'
seed = 0
dataset = dict(
    _delete_=True,
    type='mmkd.MultiModalArrayDataset', data_root=data_root,
    modalities=dict(visual='visual.npy', audio='audio.npy'), label_file='labels.npy',
    indices_csv='metadata/VGGSound-50k_indices_small.csv', indices_group=seed,
    transpose=dict(visual=(3, 0, 1, 2)),  # (T, H, W, C) -> (C, T, H, W), as the official code
    mmap=True,
    classes=[str(i) for i in range(141)])
train_dataloader = dict(dataset=dict(
    dataset, split='train',
    pipeline=[dict(type='mmkd.PackMultiModalInputs', keys=('visual', 'audio'))]))
val_dataloader = dict(dataset=dict(
    dataset, split='val', pipeline=[dict(type='mmkd.PackMultiModalInputs', keys=('visual', ))]))
test_dataloader = dict(val_dataloader, dataset=dict(val_dataloader['dataset'], split='test'))
masknet_val_dataloader = dict(dataset=dict(  # the MaskNet validation runs the teachers
    dataset, split='val',
    pipeline=[dict(type='mmkd.PackMultiModalInputs', keys=('visual', 'audio'))]))

pp = dict(type='mmkd.MultiModalDataPreprocessor', modalities=dict(visual=dict(), audio=dict()))
visual_encoder = dict(type='ConvEncoder3d', in_channels=512, width=64, out_dim=128)
audio_encoder = dict(type='ConvEncoder1d', in_channels=10, width=16, out_dim=256)
model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='MultiTeacherDistill',
    architecture=dict(type='mmkd.MultiModalClassifier', num_classes=141, hidden_dim=320,
                      encoders=dict(visual=visual_encoder), data_preprocessor=pp),
    student_input_key=['visual'],
    student_logits='fc2',
    teachers=dict(
        mm=dict(model=dict(type='mmkd.MultiModalClassifier', num_classes=141, hidden_dim=320,
                           encoders=dict(visual=visual_encoder, audio=audio_encoder), data_preprocessor=pp),
                input_key=['visual', 'audio'], logits_source='fc2',
                masknets=[dict(layer='fusion', type='MaskNet1d', feat_dim=384, num_heads=3,
                               hidden_dim_factor=0.25),
                          dict(layer='fc1', type='MaskNet1d', feat_dim=320, num_heads=3,
                               hidden_dim_factor=0.25)]),
        audio=dict(model=dict(type='mmkd.MultiModalClassifier', num_classes=141,
                              hidden_dim=320, encoders=dict(audio=audio_encoder),
                              data_preprocessor=pp),
                   input_key=['audio'], logits_source='fc2',
                   masknets=[dict(layer='fusion', type='MaskNet1d', feat_dim=256, num_heads=3,
                                  hidden_dim_factor=0.25),
                             dict(layer='fc1', type='MaskNet1d', feat_dim=320, num_heads=3,
                                  hidden_dim_factor=0.25)])),
    combiner=dict(type='MSTRouter', num_classes=141, topk=1, tau=4.0, w_kl=1.0, w_lb=1.0,
                  lb_mode='KL'),
    cotrain_teachers=True,
    stage='cotrain')
