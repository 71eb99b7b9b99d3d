"""Prefect flows: thin orchestration over `videozero` and `store` (deployments in prefect.yaml)."""
