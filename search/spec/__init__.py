"""The experiment spec and its space: from YAML to a validated `Spec`, trial configs, grid."""
