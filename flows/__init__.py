"""Prefect flows: thin orchestration over `videozero` and `store` (deployments in prefect.yaml)."""

from videozero.quiet import quiet_libraries

quiet_libraries()  # a served flow run is a process of its own: keep library chatter off its console
