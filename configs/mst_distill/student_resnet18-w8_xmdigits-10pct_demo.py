# Student alone (image modality only): CIFAR ResNet-18 width 8 on the 10% labelled
# training images, 600 iterations. The images, split, labelled subset and schedule are
# those of configs/kd/student_resnet18-w8_digits-10pct_demo.py; only the data set class
# differs (it also carries the audio modality, which the student never reads).
_base_ = ['../kd/student_resnet18-w8_digits-10pct_demo.py']
train_dataloader = dict(dataset=dict(type='mmkd.CrossModalDigitsDataset'))
val_dataloader = dict(dataset=dict(type='mmkd.CrossModalDigitsDataset'))
test_dataloader = val_dataloader
