"""A Django app for tests/python/test_django_middleware.py (models only)."""
