# Plain mmdet RetinaNet (student of the shapes detection demos), no distillation.
_base_ = [
    '../_base_/datasets/shapes_detection.py', '../_base_/schedules/shapes_det.py',
    '../_base_/default_runtime.py', '../_base_/models/retinanet_r18-w16_fpn_shapes.py'
]
