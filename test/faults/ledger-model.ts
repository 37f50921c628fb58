import type pg from "pg";

/**
 * Writers that log every acknowledgement, and the state the table must hold because of them.
 * Each writer owns its rows (ids `writer * 1e6 + k`), so what the table must hold follows from
 * the acknowledgements alone, whatever order the writers ran in.
 *
 * An error with an SQLSTATE means the write did not happen (herd says 08007 when it cannot
 * know); an error without one (the connection to herd dropped) or 08007 leaves the rows it
 * touched uncertain: they are not checked.
 */
export interface LedgerRow {
  readonly n: number;
  readonly note: string;
}

export interface Tally {
  statements: number;
  acknowledged: number;
  refused: number;
  uncertain: number;
  readonly codes: Map<string, number>;
}

export class LedgerWriter {
  /** What the table must hold of this writer's rows. */
  readonly rows = new Map<number, LedgerRow>();
  /** Ids whose state cannot be known (outcome unknown). */
  readonly uncertain = new Set<number>();
  /** Ids this writer ever tried to write. */
  readonly tried = new Set<number>();
  private next = 0;
  private notesUncertain = false;

  constructor(
    readonly writer: number,
    private readonly client: pg.Client,
    private readonly tally: Tally,
    private readonly random: () => number,
  ) {}

  /** One operation, chosen at random: insert, update, delete, a block of three, or a multi-shard update. */
  async step(): Promise<void> {
    const roll = this.random();
    if (roll < 0.4 || this.rows.size < 3) return this.insert();
    if (roll < 0.65) return this.update();
    if (roll < 0.75) return this.remove();
    if (roll < 0.9) return this.block();
    return this.multiShard();
  }

  private newId(): number {
    const id = this.writer * 1_000_000 + this.next++;
    this.tried.add(id);
    return id;
  }

  private pick(): number {
    const ids = [...this.rows.keys()];
    return ids[Math.floor(this.random() * ids.length)] as number;
  }

  private async insert(): Promise<void> {
    const id = this.newId();
    const note = `i${id}`;
    if (
      await this.run([id], () =>
        this.client.query("INSERT INTO ledger VALUES ($1, $2, 0, $3)", [id, this.writer, note]),
      )
    )
      this.rows.set(id, { n: 0, note });
  }

  private async update(): Promise<void> {
    const id = this.pick();
    const row = this.rows.get(id) as LedgerRow;
    if (await this.run([id], () => this.client.query("UPDATE ledger SET n = n + 1 WHERE id = $1", [id])))
      this.rows.set(id, { ...row, n: row.n + 1 });
  }

  private async remove(): Promise<void> {
    const id = this.pick();
    if (await this.run([id], () => this.client.query("DELETE FROM ledger WHERE id = $1", [id]))) this.rows.delete(id);
  }

  /** Two inserts and an update in one block: most likely on several workers. */
  private async block(): Promise<void> {
    const [a, b] = [this.newId(), this.newId()];
    const c = this.pick();
    const row = this.rows.get(c) as LedgerRow;
    const done = await this.run([a, b, c], async () => {
      await this.client.query("BEGIN");
      await this.client.query("INSERT INTO ledger VALUES ($1, $2, 0, 'b')", [a, this.writer]);
      await this.client.query("INSERT INTO ledger VALUES ($1, $2, 0, 'b')", [b, this.writer]);
      await this.client.query("UPDATE ledger SET n = n + 10 WHERE id = $1", [c]);
      await this.client.query("COMMIT");
    });
    if (done) {
      this.rows.set(a, { n: 0, note: "b" });
      this.rows.set(b, { n: 0, note: "b" });
      this.rows.set(c, { ...row, n: row.n + 10 });
    }
  }

  /** An UPDATE of all this writer's rows, which live in every shard. */
  private async multiShard(): Promise<void> {
    const note = `m${this.next++}`;
    // an unknown outcome leaves only the notes uncertain: the rows and their counts are not touched
    const done = await this.run([], () =>
      this.client.query("UPDATE ledger SET note = $1 WHERE writer = $2", [note, this.writer]),
    );
    if (done) for (const [id, row] of this.rows) this.rows.set(id, { ...row, note });
    else if (done === undefined) this.notesUncertain = true;
  }

  /** Runs a write; true when acknowledged, false when refused, undefined when its outcome is unknown. */
  private async run(ids: readonly number[], write: () => Promise<unknown>): Promise<boolean | undefined> {
    this.tally.statements += 1;
    try {
      await write();
      this.tally.acknowledged += 1;
      return true;
    } catch (error) {
      const code = (error as { code?: string }).code;
      const key = `${code ?? "none"} ${(error as Error).message.replace(/\d+/g, "N")}`;
      this.tally.codes.set(key, (this.tally.codes.get(key) ?? 0) + 1);
      await this.client.query("ROLLBACK").catch(() => {});
      if (code && code !== "08007") {
        this.tally.refused += 1;
        return false;
      }
      this.tally.uncertain += 1;
      for (const id of ids) this.uncertain.add(id);
      return undefined;
    }
  }

  /**
   * What is wrong with this writer's rows in `actual`: acknowledged writes that are missing or
   * different (lost), rows that were never acknowledged (visible although refused).
   */
  check(actual: ReadonlyMap<number, LedgerRow & { writer: number }>): { lost: string[]; unacknowledged: string[] } {
    const lost: string[] = [];
    const unacknowledged: string[] = [];
    for (const id of this.tried) {
      if (this.uncertain.has(id)) continue;
      const expected = this.rows.get(id);
      const found = actual.get(id);
      if (expected && !found) lost.push(`${id} missing`);
      else if (!expected && found) unacknowledged.push(`${id} present`);
      else if (expected && found) {
        if (found.n !== expected.n) lost.push(`${id} n=${found.n}, acknowledged ${expected.n}`);
        if (!this.notesUncertain && found.note !== expected.note)
          lost.push(`${id} note=${found.note}, acknowledged ${expected.note}`);
      }
    }
    for (const [id, row] of actual) {
      if (row.writer === this.writer && !this.tried.has(id)) unacknowledged.push(`${id} never written`);
    }
    return { lost, unacknowledged };
  }
}

/** The ledger table as it is, by id. */
export async function readLedger(client: pg.Client): Promise<Map<number, LedgerRow & { writer: number }>> {
  const { rows } = await client.query<{ id: string; writer: number; n: number; note: string }>(
    "SELECT id, writer, n, note FROM ledger",
  );
  return new Map(rows.map((row) => [Number(row.id), { writer: row.writer, n: row.n, note: row.note }]));
}

/** A small seeded generator (mulberry32), so a failing run can be repeated. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
