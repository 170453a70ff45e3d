"""The demo model's recipe: what `python -m audit demo` draws and trains, and what the committed
weights/demo checkpoint saw.

Apart from audit/training.py on purpose: training's own code is fingerprinted into every model card
(`training_code_fingerprint`), and a demo fact changed here is a different `TrainConfig`, which
`python -m audit demo` already sees as "retrain" - the recipe needs no fingerprint of its own.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

# Small and fast enough to train K folds + final from scratch on 2 CPU cores: timm's tiny ResNet
# learns the demo from scratch in minutes; mobilenetv3_small_050 did not (val mask accuracy ~0.6
# after 500 steps, see BENCHMARKS.md "Classifier").
DEMO_ARCH = "test_resnet"
DEMO_IMG_SIZE = (64, 48)
# The central 70% of each side: the demo's face gets ~2x the pixels of the 64x48 input at the same
# cost (age correlation with the true age 0.29 -> 0.42, gender 0.73 -> 0.74-0.78, one seed each);
# 0.6 cut the chin, and with it an incorrectly worn mask, off the demo's close-up shots
# (BENCHMARKS.md "Input crop").
DEMO_CROP = 0.7
# The demo data `python -m audit demo` draws and the committed weights/demo checkpoint saw.
DEMO_PEOPLE = 300
DEMO_EVAL_IMAGES = 400
DEMO_SEED = 0
# 9 epochs: `python -m audit demo` takes about 5 minutes on 2 CPU cores (3 folds + final, eval in the folds).
DEMO_EPOCHS = 9
# The domain-pretrained backbone (`python -m audit pretrain`, audit/pretraining.py) the demo model and
# bench-noise fine-tune from when it is there; its card sets the architecture, input size and crop.
DEMO_PRETRAINED = Path(__file__).resolve().parent.parent / "weights" / "pretrained" / "model.pt"
# Fine-tuning starts from a model that already sees the faces: fewer epochs at a lower peak rate.
DEMO_FINETUNE_EPOCHS = 4
DEMO_FINETUNE_LR = 1e-3


def demo_train_config(*, pretrained_file: str | Path | None = None, **changes):
    """The demo model's TrainConfig. No network is needed either way: from scratch (the default
    without `pretrained_file`), or fine-tuned from a local Mask Audit checkpoint (e.g.
    DEMO_PRETRAINED), whose card sets the architecture, input size and crop; `changes` override any of it."""
    from audit.training import TrainConfig  # training imports this module for its defaults

    if pretrained_file is None:
        return dataclasses.replace(TrainConfig(pretrained=False, epochs=DEMO_EPOCHS, crop=DEMO_CROP), **changes)
    from audit.model import pretrained_card

    base = TrainConfig(pretrained=True, pretrained_file=str(pretrained_file), epochs=DEMO_FINETUNE_EPOCHS,
                       lr=DEMO_FINETUNE_LR, crop=DEMO_CROP)
    card = pretrained_card(pretrained_file)
    if card is not None:
        base = dataclasses.replace(base, arch=card.arch, img_size=card.image_size, crop=card.crop)
    return dataclasses.replace(base, **changes)


def default_pretrained_file() -> Path | None:
    """DEMO_PRETRAINED when it is there (the committed domain-pretrained backbone), else None."""
    return DEMO_PRETRAINED if DEMO_PRETRAINED.is_file() else None
