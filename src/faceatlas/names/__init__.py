"""Stage 1, who: names from Wikidata or an LLM (two passes) or spreadsheets, stored as people.

Normalisation and identity keys are the domain's (``faceatlas.domain.names``); heavy imports
(``openai``, ``openpyxl``, the database) happen in the submodules.
"""
