# ACAM-KD on Cityscapes logits, the paper's DeepLabV3 R101 -> DeepLabV3 MobileNetV2
# setting (M=19), on the paper's schedule (40k iterations, lr 0.02). Needs Cityscapes
# under data/cityscapes. The R18 config with the MobileNetV2 student: mmseg's two
# student configs differ only in the model.
_base_ = ['./acam-kd_logits_deeplabv3-r101-d8_deeplabv3-r18-d8_4xb2-40k_cityscapes-512x1024.py']

model = dict(architecture=dict(
    cfg_path='mmseg::mobilenet_v2/mobilenet-v2-d8_deeplabv3_4xb2-80k_cityscapes-512x1024.py'))
