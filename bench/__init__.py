"""pghistory's benchmarks, a package so they import the library and the test harness without path
edits: run them from the repository root as `python -m bench.<script>` (run, soak, read,
partitioned)."""
