"""Stage 1, who: names from an LLM (two passes) or spreadsheets, normalised and stored.

Heavy imports (``openai``, ``openpyxl``, the database) happen in the submodules, so
``import faceatlas.names.normalize`` stays cheap for everyone else.
"""

from __future__ import annotations

from faceatlas.names.normalize import InvalidNameError

__all__ = ["InvalidNameError"]
