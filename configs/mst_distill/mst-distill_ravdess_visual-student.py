# MST-Distill on RAVDESS (video + audio, 8 emotions); the student sees the video.
# Data (official preprocessing, data_preprocess/preprocess_RAVDESS_*.py) under
# data/ravdess/: video_data.npy (N, 15, 3, H, W), audio_data.npy (N, 15, 156),
# label_data.npy (N,), and metadata/RAVDESS_indices.csv. Official batch 32, Adam 1e-4.
# Encoders are small generic stand-ins for the paper's VisualBranchNet / AudioBranchNet /
# DSCNN-I.
_base_ = ['./mst-distill_avmnist_image-student.py']
data_root = 'data/ravdess/'
seed = 0
dataset = dict(
    _delete_=True,
    type='mmkd.MultiModalArrayDataset', data_root=data_root,
    modalities=dict(video='video_data.npy', audio='audio_data.npy'),
    label_file='label_data.npy',
    indices_csv='metadata/RAVDESS_indices.csv', indices_group=seed,
    transpose=dict(video=(1, 0, 2, 3)),  # (T, C, H, W) -> (C, T, H, W) for 3-D convs
    minmax=dict(video=2, audio='sample'),  # official: video per colour channel
    mmap=True,
    classes=['neutral', 'calm', 'happy', 'sad', 'angry', 'fearful', 'disgust', 'surprised'])
train_dataloader = dict(
    batch_size=32,
    dataset=dict(dataset, split='train',
                 pipeline=[dict(type='mmkd.PackMultiModalInputs', keys=('video', 'audio'))]))
val_dataloader = dict(
    batch_size=32,
    dataset=dict(dataset, split='val',
                 pipeline=[dict(type='mmkd.PackMultiModalInputs', keys=('video', ))]))
test_dataloader = dict(val_dataloader, dataset=dict(val_dataloader['dataset'], split='test'))
masknet_val_dataloader = dict(  # the MaskNet validation runs the teachers
    batch_size=32,
    dataset=dict(dataset, split='val',
                 pipeline=[dict(type='mmkd.PackMultiModalInputs', keys=('video', 'audio'))]))

pp = dict(type='mmkd.MultiModalDataPreprocessor', modalities=dict(video=dict(), audio=dict()))
video_encoder = dict(type='ConvEncoder3d', in_channels=3, width=8, out_dim=64)
audio_encoder = dict(type='ConvEncoder1d', in_channels=15, width=32, out_dim=128)
model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='MultiTeacherDistill',
    architecture=dict(type='mmkd.MultiModalClassifier', num_classes=8, hidden_dim=160,
                      encoders=dict(video=video_encoder), data_preprocessor=pp),
    student_input_key=['video'],
    student_logits='fc2',
    teachers=dict(
        mm=dict(model=dict(type='mmkd.MultiModalClassifier', num_classes=8, hidden_dim=160,
                           encoders=dict(video=video_encoder, audio=audio_encoder),
                           data_preprocessor=pp),
                input_key=['video', 'audio'], logits_source='fc2',
                masknets=[dict(layer='fusion', type='MaskNet1d', feat_dim=192, num_heads=3),
                          dict(layer='fc1', type='MaskNet1d', feat_dim=160, num_heads=3)]),
        audio=dict(model=dict(type='mmkd.MultiModalClassifier', num_classes=8, hidden_dim=160,
                              encoders=dict(audio=audio_encoder), data_preprocessor=pp),
                   input_key=['audio'], logits_source='fc2',
                   masknets=[dict(layer='fusion', type='MaskNet1d', feat_dim=128, num_heads=3),
                             dict(layer='fc1', type='MaskNet1d', feat_dim=160, num_heads=3)])),
    combiner=dict(type='MSTRouter', num_classes=8, topk=1, tau=4.0, w_kl=1.0, w_lb=1.0,
                  lb_mode='KL'),
    cotrain_teachers=True,
    stage='cotrain')
