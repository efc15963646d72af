"""faceatlas: build, keep and serve face-recognition galleries of public figures."""

__version__ = "0.1.0"
