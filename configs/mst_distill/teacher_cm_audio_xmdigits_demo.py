# Cross-modal (CM) teacher: the audio modality alone, all training labels, 15 epochs.
_base_ = ['./teacher_mm_img-audio_xmdigits_demo.py']
model = dict(encoders=dict(_delete_=True,
                           audio=dict(type='ConvEncoder1d', in_channels=1, width=16, out_dim=64)))
