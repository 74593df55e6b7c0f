# Multimodal teacher of the cross-modal digits demos: a conv encoder per modality,
# concatenation ('fusion', 128-d), fc1 (64-d), fc2 (10 classes).
model = dict(
    type='mmkd.MultiModalClassifier',
    encoders=dict(
        img=dict(type='ConvEncoder2d', in_channels=3, width=16, out_dim=64),
        audio=dict(type='ConvEncoder1d', in_channels=1, width=16, out_dim=64)),
    num_classes=10,
    hidden_dim=64,
    data_preprocessor=dict(
        type='mmkd.MultiModalDataPreprocessor',
        modalities=dict(
            img=dict(mean=[78.0, 78.0, 78.0], std=[105.0, 105.0, 105.0]),  # as the student
            audio=dict(mean=[0.0], std=[1.66]))))  # sqrt(0.5 + 1.5^2)
