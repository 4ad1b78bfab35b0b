"""Training: samples from scenes, Lightning loops, the train() orchestrator and its report."""
