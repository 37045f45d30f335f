"""Experiment trackers (TensorBoard, MLflow): optional integrations that watch runs and never stop one."""
