"""Tiny mmpretrain models and batches for algorithm tests (random weights, no data)."""
import torch
from mmpretrain.structures import DataSample


def tiny_classifier(width=8, num_classes=4):
    return dict(
        _scope_='mmpretrain',
        type='ImageClassifier',
        data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=num_classes,
                               mean=[0.0] * 3, std=[255.0] * 3),
        backbone=dict(type='ResNet_CIFAR', depth=18, stem_channels=width, base_channels=width,
                      out_indices=(3, )),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=num_classes, in_channels=width * 8))


def logit_distiller(loss=None, **mapping_extra):
    return dict(
        type='ConfigurableDistiller',
        student_recorders=dict(logits=dict(type='ModuleOutputs', source='head.fc')),
        teacher_recorders=dict(logits=dict(type='ModuleOutputs', source='head.fc')),
        distill_losses=dict(loss_kd=loss or dict(type='KLDivergence', tau=2.0)),
        loss_forward_mappings=dict(loss_kd=dict(
            preds_S=dict(from_student=True, recorder='logits'),
            preds_T=dict(from_student=False, recorder='logits'), **mapping_extra)))


def batch(n=4, size=16, num_classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    inputs = [torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8)
              for _ in range(n)]
    samples = [DataSample().set_gt_label(int(i % num_classes)) for i in range(n)]
    return dict(inputs=inputs, data_samples=samples)
