import { HerdError, SqlState, shardIndexForHash } from "@herd/shared";
import type { DistributedTable, Shard, WorkerNode } from "../metadata/catalog-types.js";
import { type BindMessage, parameterFormat } from "../protocol/frontend-messages.js";
import { hashOfBinary, hashOfText, type ValueSource } from "./distribution-value.js";

/**
 * What pins a distributed table's distribution column in a statement (shard-pruning.ts finds
 * it): values, or the elements of an array parameter (`= ANY($n)`).
 */
export type Pin =
  | { readonly kind: "values"; readonly values: readonly ValueSource[] }
  /** `= ANY($n)`: the values are the elements of an array parameter. */
  | { readonly kind: "array-param"; readonly number: number };

/** A distributed table a statement reads or writes, and what pins its distribution column. */
export interface Anchor {
  readonly table: DistributedTable;
  readonly pin: Pin | undefined;
  /**
   * Its rows bound the statement's: a table of the statement's own level, not on the nullable
   * side of an outer join (a subquery's table bounds only the subquery's rows).
   */
  readonly bounds?: boolean;
}

/**
 * The shard indexes an anchor's pin leads to, with the parameters of this execution; every
 * index when the pin cannot be evaluated (no pin, a value of the wrong type), which is never
 * wrong, only slower.
 */
export function shardIndexesOf(anchor: Anchor, bind: BindMessage | undefined): number[] {
  const count = anchor.table.shards.length;
  const hashes = pinnedHashes(anchor, bind);
  if (!hashes) return Array.from({ length: count }, (_, i) => i);
  if (hashes.length === 1) return [shardIndexForHash(hashes[0] as number, count)];
  return [...new Set(hashes.map((hash) => shardIndexForHash(hash, count)))].sort((a, b) => a - b);
}

/**
 * The hashes of the distribution values an anchor's pin leads to, with the parameters of this
 * execution (none for a pin to NULL only); undefined when the pin cannot be evaluated (no pin, a
 * value of the wrong type): every shard then.
 */
export function pinnedHashes(anchor: Anchor, bind: BindMessage | undefined): number[] | undefined {
  const pin = anchor.pin;
  if (!pin) return undefined;
  const type = anchor.table.distributionType as number;
  const hashes: number[] = [];
  try {
    if (pin.kind === "values") {
      for (const value of pin.values) {
        const hash = hashOf(type, value, bind);
        if (hash !== null) hashes.push(hash);
      }
    } else {
      const raw = bind?.parameters[pin.number - 1];
      if (raw === undefined || parameterFormat(bind as BindMessage, pin.number - 1) !== 0) return undefined;
      if (raw === null) return [];
      const elements = parseTextArray(raw.toString("utf8"));
      if (!elements) return undefined;
      for (const element of elements) if (element !== null) hashes.push(hashOfText(type, element));
    }
  } catch {
    return undefined;
  }
  return [...new Set(hashes)];
}

/** The hash of a literal or parameter value; null for NULL (which equals nothing). */
export function hashOf(type: number, value: ValueSource, bind: BindMessage | undefined): number | null {
  if (value.kind === "literal") return value.text === null ? null : hashOfText(type, value.text);
  const raw = parameterValue(bind, value.number);
  if (raw === null) return null;
  return parameterFormat(bind as BindMessage, value.number - 1) === 1
    ? hashOfBinary(type, raw)
    : hashOfText(type, raw.toString("utf8"));
}

/** Parameter `$number` as the client bound it (null for NULL). */
export function parameterValue(bind: BindMessage | undefined, number: number): Buffer | null {
  const raw = bind?.parameters[number - 1];
  if (raw === undefined)
    throw new HerdError(`there is no parameter $${number}`, { sqlState: SqlState.undefinedParameter });
  return raw;
}

/** Elements of a one-dimensional array literal `{1,2,"a b",NULL}`; undefined when it is not that simple. */
function parseTextArray(text: string): (string | null)[] | undefined {
  if (!text.startsWith("{") || !text.endsWith("}")) return undefined;
  const body = text.slice(1, -1);
  if (body === "") return [];
  const elements: (string | null)[] = [];
  let i = 0;
  while (i <= body.length) {
    if (body[i] === '"') {
      let value = "";
      i += 1;
      while (i < body.length && body[i] !== '"') {
        if (body[i] === "\\") i += 1;
        value += body[i];
        i += 1;
      }
      elements.push(value);
      i += 2; // closing quote and comma
    } else {
      const end = body.indexOf(",", i);
      const raw = body.slice(i, end < 0 ? body.length : end).trim();
      if (raw.includes("{")) return undefined;
      elements.push(raw.toUpperCase() === "NULL" ? null : raw);
      i = end < 0 ? body.length + 1 : end + 1;
    }
  }
  return elements;
}

/** The workers holding an active placement of a shard, in placement order. */
export function activeNodes(shard: Shard, workers: ReadonlyMap<number, WorkerNode>): WorkerNode[] {
  const nodes: WorkerNode[] = [];
  for (const placement of shard.placements) {
    const node = workers.get(placement.nodeId);
    if (placement.state === "active" && node) nodes.push(node);
  }
  if (nodes.length === 0) {
    throw new HerdError(`shard ${shard.id} has no active placement`, {
      sqlState: SqlState.objectNotInPrerequisiteState,
      hint: "Its workers may be gone; see GET /v1/placements on the admin API.",
    });
  }
  return nodes;
}
