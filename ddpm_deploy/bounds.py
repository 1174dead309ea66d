"""The upper bounds, one table: what the largest real model of each kind needs, and no more.

The card's schema (ddpm_deploy/card_schema.py), the schedule and the options of the commands read
their limits from here, so a model file and a command line are held to the same numbers.
"""

from __future__ import annotations

MAX_T = 100_000  # diffusion steps of a schedule (1000 in every published DDPM)
MAX_SIDE = 4096  # image height and width (train --image-size's bound)
MAX_CLASSES = 10_000  # class labels of a class-conditional model
MAX_WIDTH = 2048  # channels of one UNet level (resunet base x mult, a diffusers block)
MAX_RANK = 4096  # principal directions per class (learn-sampler --rank's bound)
MAX_GUIDANCE = 100.0  # the classifier-free guidance scale every command and the page accept
MAX_TEXT = 4096  # a name, a path, a hash
MAX_B64 = 2**31  # base64 characters of one statistics array
MAX_ITEMS = 1_000_000  # entries of a free list (a distillation's history)
