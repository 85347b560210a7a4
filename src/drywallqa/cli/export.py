"""`drywallqa export` (being written; this placeholder registers nothing)."""


def add_commands(subparsers) -> None:
    return None
