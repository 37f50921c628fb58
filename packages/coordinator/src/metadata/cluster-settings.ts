import type pg from "pg";

export interface DistributionDefaults {
  readonly shardCount: number;
  readonly replicationFactor: number;
}

/** Cluster-wide settings in `herd.settings`: the defaults new distributed tables are created with. */
export class ClusterSettings {
  constructor(private readonly pool: pg.Pool) {}

  async saveDefaults(defaults: DistributionDefaults): Promise<void> {
    await this.pool.query(
      `INSERT INTO herd.settings (name, value) VALUES ('shard_count', $1), ('replication_factor', $2)
       ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value`,
      [String(defaults.shardCount), String(defaults.replicationFactor)],
    );
  }
}
