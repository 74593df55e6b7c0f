# Teacher for the digits demos: a CIFAR-style ResNet-18 (3x3 stem), width 32.
model = dict(
    type='ImageClassifier',
    data_preprocessor=dict(
        type='ClsDataPreprocessor',
        num_classes=10,
        # mean/std of the digits train images scaled to 0..255
        mean=[78.0, 78.0, 78.0],
        std=[105.0, 105.0, 105.0],
        to_rgb=False),
    backbone=dict(type='ResNet_CIFAR', depth=18, stem_channels=32, base_channels=32,
                  num_stages=4, out_indices=(3, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=10, in_channels=256,
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))
