"""A builder plugin with one tool, ``check_site``: an offline check of a static site."""

from __future__ import annotations

from builder_site_checker.checker import Problem, check_pages

__all__ = ["Problem", "check_pages"]
