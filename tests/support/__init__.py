"""Helpers and fixtures the tests share: each fixture is defined once here and registered in conftest.py."""
