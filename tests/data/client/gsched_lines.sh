#!/bin/sh
# A gsched-native script.
#GSCHED --gpus 2 --gpu-type h100,h200
#GSCHED --time 4h --class high --topology block
#GSCHED --image /images/pytorch-24.10 -e EPOCHS=3 -e LR=0.001
#GSCHED --after-ok 7 --after-not-ok 8
#GSCHED --no-requeue

exec python train.py "$@"
