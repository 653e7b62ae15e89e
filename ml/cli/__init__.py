"""Subcommands of ``python -m ml``; each module exposes ``register(subparsers)``."""
