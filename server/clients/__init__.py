"""Clients of a running server: ``hidenet fetch``, the load test and a real server process to run them against."""
