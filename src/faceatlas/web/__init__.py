"""Talking to the outside web safely and politely: the SSRF guard, the polite Wikimedia client
and the Wikidata reader that names (stage 1) and sources (stage 2) both use."""
