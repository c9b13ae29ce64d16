"""Training: losses, schedules, the trainer, and torchrun / DDP support."""
