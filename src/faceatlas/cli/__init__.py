"""The ``faceatlas`` command: thin shells over the library, with progress bars and tables.

Each module registers its commands on the one Typer ``app`` in ``base``.
"""

from __future__ import annotations

from faceatlas.cli import (  # noqa: F401  (they register commands)
    collect,
    core,
    distributed,
    eval,
    seed,
    serve,
    sightings,
    surgery,
    tools,
    video,
)
from faceatlas.cli.base import app


def main() -> None:
    app()


if __name__ == "__main__":
    main()
