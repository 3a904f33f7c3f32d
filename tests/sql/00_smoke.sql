-- Smoke test: the extension installs and answers.
\set VERBOSITY terse
CREATE EXTENSION pghistory;
SELECT pghistory.version();
DROP EXTENSION pghistory;
