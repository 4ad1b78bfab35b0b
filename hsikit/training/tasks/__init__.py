"""Lightning tasks, all on one base (:mod:`hsikit.training.tasks.base`): patch classification
and self-supervised pretraining."""
