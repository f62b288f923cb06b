"""``python -m integrations.sandbox``: the sandbox clearinghouse command without the ``medbill`` entry point."""

from .cli import sandbox_clearinghouse

if __name__ == "__main__":
    sandbox_clearinghouse()
