"""Helpers shared by the tests.

Fixtures stay in the conftest.py files, where pytest finds them by name; everything a test
imports lives here.
"""
