-- pnpm bench router, the floor of "single-row update": what each of herd's two placements does for
-- one such write, on one PostgreSQL with nothing in front of it: the UPDATE and PREPARE TRANSACTION
-- in one round trip (as herd pipelines them), then COMMIT PREPARED. Run with -M simple (the
-- transaction's name is text, not a parameter).
\set aid random(1, 100000 * :scale)
\set delta random(-5000, 5000)
\set name random(1, 2000000000)
BEGIN \; UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid \; PREPARE TRANSACTION 'bench_:client_id_:name';
COMMIT PREPARED 'bench_:client_id_:name';
