# The shapes segmentation data (see shapes_segmentation.py) split for semi-supervised
# training: 1/8 of the 300 training images keep their labels (38 images, a random
# subset fixed by split_seed), the other 262 are unlabelled (their labels are removed
# by mmkd.SemiSupervisedSegDataset before any pipeline runs).
#   semi_train_dataset: one labelled sample + 2 unlabelled samples per item (MGD).
#   labelled_train_dataset: the same 38 labelled images alone (supervised baselines,
#     teachers trained on the labelled part only).
_base_ = ['./shapes_segmentation.py']
labelled_fraction = 0.125
split_seed = 0
unlabelled_pipeline = [
    dict(type='LoadImageFromFile'),
    # the labelled pipeline's geometry, without LoadAnnotations
    dict(type='RandomResize', scale={{_base_.crop_size}}, ratio_range=(1.0, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size={{_base_.crop_size}}),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
labelled_train_dataset = dict(
    type='mmkd.SemiSupervisedSegDataset',
    dataset={{_base_.train_dataloader.dataset}},
    labelled_fraction=labelled_fraction,
    split_seed=split_seed,
    labelled_only=True)
semi_train_dataset = dict(
    type='mmkd.SemiSupervisedSegDataset',
    dataset={{_base_.train_dataloader.dataset}},
    unlabelled_pipeline=unlabelled_pipeline,
    labelled_fraction=labelled_fraction,
    split_seed=split_seed,
    num_unlabelled=2,
    labelled_only=False)
train_dataloader = dict(dataset=dict(_delete_=True, **labelled_train_dataset))
