"""Training side of ddpm-deploy (torch, torchvision): the UNets, training, distill, and the torch
backend. The runtime reaches it only by name, when `--backend torch` is chosen (runtime/backends.py)."""
