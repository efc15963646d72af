"""Stage 3, which faces are this person: identity groups, the decisions, collection-level
arbitration and trusted references."""
