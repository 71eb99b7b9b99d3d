"""The `videozero` command line (typer + rich)."""
