-- pnpm bench router, "single-row update": one UPDATE by key outside a block, as an
-- application's autocommit write (on herd: both placements, two-phase commit)
\set aid random(1, 100000 * :scale)
\set delta random(-5000, 5000)
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
