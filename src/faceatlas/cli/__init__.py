"""The ``faceatlas`` command: thin shells over the library, with progress bars and tables.

Each module registers its commands on the one Typer ``app`` in ``base``.
"""

from __future__ import annotations

from faceatlas.cli import collect, core, distributed, seed, serve  # noqa: F401  (register commands)
from faceatlas.cli.base import app


def main() -> None:
    app()


if __name__ == "__main__":
    main()
