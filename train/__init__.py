"""Training side of ddpm-deploy (torch, torchvision). Never imported by the runtime."""
