-- Citus schema-based sharding for medbill (see infra/README.md). Run on the coordinator as a superuser, after
-- `medbill migrate` has created the shared schema, with the worker nodes' addresses filled in.
CREATE EXTENSION IF NOT EXISTS citus;
SELECT citus_set_coordinator_host('pg-coordinator', 5432);
SELECT citus_add_node('pg-worker-1', 5432);
SELECT citus_add_node('pg-worker-2', 5432);

-- Every schema created from now on is a distributed schema: `medbill practices create` makes one per practice.
ALTER DATABASE medbill SET citus.enable_schema_based_sharding TO on;

-- Practice schemas that existed before: each becomes a distributed schema (one shard group, placed on a node).
DO $$
DECLARE s text;
BEGIN
    FOR s IN SELECT nspname FROM pg_namespace WHERE nspname LIKE 'practice\_%'
             AND NOT EXISTS (SELECT 1 FROM pg_dist_schema WHERE schemaid = pg_namespace.oid) LOOP
        PERFORM citus_schema_distribute(s);
    END LOOP;
END $$;

-- The shared registry: small, read-mostly tables every practice query may join become reference tables (a copy
-- on each node); the growing audit log and tokens stay on the coordinator as local tables Citus knows about.
DO $$
DECLARE t text;
BEGIN
    FOR t IN SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname = 'shared'
             AND tablename NOT IN ('audit_log', 'api_tokens', 'alembic_version') LOOP
        PERFORM create_reference_table(t);
    END LOOP;
END $$;
SELECT citus_add_local_table_to_metadata('shared.audit_log');
SELECT citus_add_local_table_to_metadata('shared.api_tokens');

-- Spread practices evenly over the nodes (moves whole schemas, online).
SELECT citus_rebalance_start();
