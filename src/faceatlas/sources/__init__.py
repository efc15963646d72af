"""Stage 2, where: image-search providers behind one protocol."""

from faceatlas.sources.base import ImageSearchProvider, SearchHit, query_for
from faceatlas.sources.rapidapi import RapidAPIImageSearch

__all__ = ["ImageSearchProvider", "RapidAPIImageSearch", "SearchHit", "query_for"]
