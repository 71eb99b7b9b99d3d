"""OpenRLHF backend (optional extra, GPU clusters): dataset export, reward module, `ray job submit` command.

Nothing here imports OpenRLHF, Ray or vLLM at import time: the export and the command are built on any
machine, and the reward module only needs videozero and torch where OpenRLHF loads it.
"""
