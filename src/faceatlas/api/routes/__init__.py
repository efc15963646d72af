"""Routers: ``seed`` (the old system's paths), ``v1`` (REST under /api/v1), ``excel`` (to come)."""
