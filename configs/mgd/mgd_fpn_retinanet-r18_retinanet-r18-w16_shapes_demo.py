# Masked Generative Distillation on every FPN level of a RetinaNet (the official
# RetinaNet setting: spatial mask, lambda=0.65, alpha=2e-5), shapes demo. MGDLoss
# aligns the student's 32 channels to the teacher's 64 with a 1x1 conv, masks 65%
# of the positions and regenerates the teacher's full feature with two 3x3 convs.
_base_ = ['../fitnet/fitnet_fpn_retinanet-r18_retinanet-r18-w16_shapes_demo.py']

levels = 5
model = dict(
    distiller=dict(
        connectors=dict(_delete_=True),
        distill_losses={
            '_delete_': True,
            **{
                f'loss_mgd_p{i + 3}': dict(
                    type='MGDLoss', student_channels=32, teacher_channels=64,
                    alpha_mgd=2e-5, lambda_mgd=0.65, mask_type='spatial')
                for i in range(levels)
            }
        },
        loss_forward_mappings={
            '_delete_': True,
            **{
                f'loss_mgd_p{i + 3}': dict(
                    preds_S=dict(from_student=True, recorder='fpn', data_idx=i),
                    preds_T=dict(from_student=False, recorder='fpn', data_idx=i))
                for i in range(levels)
            }
        }))
