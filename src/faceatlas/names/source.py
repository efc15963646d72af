"""Which names source runs: Wikidata (keyless) or the LLM (``FACEATLAS_NAMES_SOURCE``).

``auto`` picks the LLM when ``OPENAI_API_KEY`` is set, else Wikidata. After an LLM run the
verified names are checked against Wikidata (``FACEATLAS_WIKIDATA_CHECK_LLM``): each one that
resolves to a citizen with the asked occupation gets its Q-id, and the rate is reported.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from faceatlas.domain.errors import ProviderError
from faceatlas.names import wikidata
from faceatlas.names.service import NamesReport, Progress, generate_names
from faceatlas.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class SourcedNames:
    source: str  # "wikidata" or "llm"
    report: NamesReport | wikidata.WikidataReport
    resolved: tuple[int, int] | None = None  # LLM names found on Wikidata: (found, checked)
    check_error: str | None = None  # why the Wikidata check could not run


def generate(settings: Settings, country: str, occupations: Sequence[str],
             progress: Progress | None = None) -> SourcedNames:
    """Names for a country and occupations from the configured source, people queued."""
    source = wikidata.names_source(settings)
    if source == "wikidata":
        return SourcedNames("wikidata", wikidata.generate_names_wikidata(
            settings, country, occupations, progress))  # fmt: skip
    report = generate_names(settings, country, occupations, progress=progress)
    out = SourcedNames("llm", report)
    if settings.wikidata_check_llm and report.people:
        try:
            found, checked, _ = wikidata.check_llm_names(
                settings, report.country, report.occupations, report.people)
            out.resolved = (found, checked)
        except ProviderError as exc:  # the LLM's names stand; the check is a bonus
            out.check_error = str(exc)
            log.warning("Wikidata check of the LLM's names skipped: %s", exc)
    return out
