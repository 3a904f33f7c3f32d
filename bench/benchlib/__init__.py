"""The benchmark library: a throwaway server, the variants compared, the workloads, the report.

The scripts beside this package (run.py, read.py, partitioned.py, soak.py) are thin: they parse
their options and call into it. Speed is measured here, never in a timed test.
"""
