# FitNet-style FPN feature mimicking on COCO: RetinaNet R50 (mmdet zoo, 36.5 mAP) ->
# RetinaNet R18. Both FPNs have 256 channels; each level still gets a 1x1 conv
# regressor (FitNet's hint regressor). Needs COCO under data/coco.
_base_ = ['mmdet::retinanet/retinanet_r18_fpn_1x_coco.py']

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/retinanet/retinanet_r50_fpn_1x_coco/retinanet_r50_fpn_1x_coco_20200130-c2398f9e.pth'  # noqa: E501
levels = 5
model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='SingleTeacherDistill',
    architecture=dict(cfg_path='mmdet::retinanet/retinanet_r18_fpn_1x_coco.py', pretrained=True),
    teacher=dict(cfg_path='mmdet::retinanet/retinanet_r50_fpn_1x_coco.py', pretrained=False),
    teacher_ckpt=teacher_ckpt,
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck')),
        teacher_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck')),
        connectors={
            f'hint_p{i + 3}': dict(type='ConvConnector', in_channels=256, out_channels=256)
            for i in range(levels)
        },
        distill_losses={
            f'loss_fpn_p{i + 3}': dict(type='L2Loss', loss_weight=1.0)
            for i in range(levels)
        },
        loss_forward_mappings={
            f'loss_fpn_p{i + 3}': dict(
                s_feature=dict(from_student=True, recorder='fpn', data_idx=i,
                               connector=f'hint_p{i + 3}'),
                t_feature=dict(from_student=False, recorder='fpn', data_idx=i))
            for i in range(levels)
        }))
