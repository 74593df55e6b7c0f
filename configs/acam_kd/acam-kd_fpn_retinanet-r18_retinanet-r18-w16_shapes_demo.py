# ACAM-KD on every FPN level of a RetinaNet (M=6 selection units per mask family, the
# paper's detection setting), shapes demo. ACAMKDLoss aligns the student's 32 FPN
# channels to the teacher's 64 with its own 1x1 conv, fuses teacher-query /
# student-key-value cross-attention (exact, through SDPA) and learns M channel +
# M spatial masks from the standardised fused feature, in the cooperative form (the
# loss's defaults: student and masks not detached; README). Weight 0.05 per level for the
# same reason as the FitNet demo (at 1: gradient norm ~270 vs ~2, clipped at 35,
# and the student lost 5 mAP; see README).
_base_ = ['../fitnet/fitnet_fpn_retinanet-r18_retinanet-r18-w16_shapes_demo.py']

levels = 5
model = dict(
    distiller=dict(
        connectors=dict(_delete_=True),
        distill_losses={
            '_delete_': True,
            **{
                f'loss_acam_p{i + 3}': dict(
                    type='ACAMKDLoss', student_channels=32, teacher_channels=64, num_masks=6,
                    loss_weight=0.05)
                for i in range(levels)
            }
        },
        loss_forward_mappings={
            '_delete_': True,
            **{
                f'loss_acam_p{i + 3}': dict(
                    preds_S=dict(from_student=True, recorder='fpn', data_idx=i),
                    preds_T=dict(from_student=False, recorder='fpn', data_idx=i))
                for i in range(levels)
            }
        }))
