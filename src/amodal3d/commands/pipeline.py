"""CLI commands of this stage (filled in by its issue)."""


def register(sub, train_sub) -> None:
    """Add this module's subcommands to the ``amodal3d`` parser."""
