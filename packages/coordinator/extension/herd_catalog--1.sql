-- Empty on purpose: herd's migrations make the objects, and the coordinator adds them to this
-- extension (ALTER EXTENSION herd_catalog ADD …) once they exist.
\echo Use "CREATE EXTENSION herd_catalog" to load this file. \quit
