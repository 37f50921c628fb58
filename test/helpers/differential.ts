import pg from "pg";
import { expect } from "vitest";

/** Values as PostgreSQL's text output, so both sides compare byte for byte. */
const RAW_TEXT = { getTypeParser: () => (value: string) => value };

export interface Answer {
  readonly fields: readonly { readonly name: string; readonly type: number }[];
  readonly rows: readonly (readonly (string | null)[])[];
  readonly command: string;
}

export interface Failure {
  readonly error: { readonly code: string | undefined; readonly message: string };
}

/** Runs a statement and returns its answer as text, or its error. */
export async function answer(client: pg.Client, sql: string, params?: unknown[]): Promise<Answer | Failure> {
  try {
    const result = await client.query({ text: sql, values: params, rowMode: "array", types: RAW_TEXT });
    return {
      fields: result.fields.map((field) => ({ name: field.name, type: field.dataTypeID })),
      rows: result.rows as (string | null)[][],
      command: `${result.command} ${result.rowCount ?? ""}`.trim(),
    };
  } catch (error) {
    const { code, message } = error as { code?: string; message: string };
    return { error: { code, message } };
  }
}

/** Rows in a canonical order, for statements whose order PostgreSQL does not define. */
export function sorted(rows: readonly (readonly (string | null)[])[]): (readonly (string | null)[])[] {
  return [...rows].sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));
}

/**
 * Rows as PostgreSQL defines their order when the ORDER BY has ties: the sequence of sort keys
 * (the output columns `orderKeys`) in order, and within each run of equal sort keys the rows as a
 * multiset (canonically sorted). Two answers are equally correct exactly when these are equal.
 */
export function orderedRuns(
  rows: readonly (readonly (string | null)[])[],
  orderKeys: readonly number[],
): { keys: (string | null)[][]; runs: (readonly (string | null)[])[][] } {
  const keys = rows.map((row) => orderKeys.map((index) => row[index] ?? null));
  const runs: (readonly (string | null)[])[][] = [];
  let previous: string | undefined;
  rows.forEach((row, i) => {
    const key = JSON.stringify(keys[i]);
    if (key !== previous || runs.length === 0) runs.push([]);
    runs.at(-1)?.push(row);
    previous = key;
  });
  return { keys, runs: runs.map((run) => sorted(run)) };
}

export interface SameAnswerOptions {
  /** Compare rows in order (default: when the SQL says ORDER BY anywhere). */
  readonly ordered?: boolean;
  /**
   * The output columns the statement's ORDER BY sorts by, for an order with ties: the sort keys
   * must come in the same sequence, and the rows within each run of equal keys may come in any
   * order. Overrides `ordered`.
   */
  readonly orderKeys?: readonly number[];
}

/**
 * The differential check: the same statement on herd and on a plain PostgreSQL must give the
 * same columns (names and types), rows (in order when the statement orders them) and command
 * tag, or the same error (SQLSTATE and message).
 */
export async function expectSameAnswer(
  herd: pg.Client,
  plain: pg.Client,
  sql: string,
  params?: unknown[],
  options: SameAnswerOptions = {},
): Promise<Answer> {
  const [fromHerd, fromPlain] = await Promise.all([answer(herd, sql, params), answer(plain, sql, params)]);
  const label = `${sql} ${params ? JSON.stringify(params) : ""}`;
  if ("error" in fromPlain || "error" in fromHerd) {
    expect(fromHerd, label).toEqual(fromPlain);
    return fromHerd as Answer;
  }
  expect(fromHerd.fields, label).toEqual(fromPlain.fields);
  expect(fromHerd.command, label).toEqual(fromPlain.command);
  const ordered = options.ordered ?? /\border\s+by\b/i.test(sql);
  if (options.orderKeys)
    expect(orderedRuns(fromHerd.rows, options.orderKeys), label).toEqual(
      orderedRuns(fromPlain.rows, options.orderKeys),
    );
  else if (ordered) expect(fromHerd.rows, label).toEqual(fromPlain.rows);
  else expect(sorted(fromHerd.rows), label).toEqual(sorted(fromPlain.rows));
  return fromHerd;
}

/** A statement herd must refuse: its SQLSTATE and (part of) its message. */
export async function expectHerdError(
  client: pg.Client,
  sql: string,
  code: string,
  message: string | RegExp,
  params?: unknown[],
): Promise<void> {
  const result = await answer(client, sql, params);
  expect("error" in result, `${sql} should fail`).toBe(true);
  const { error } = result as Failure;
  expect(error.code, `${sql}: ${error.message}`).toBe(code);
  if (typeof message === "string") expect(error.message).toBe(message);
  else expect(error.message).toMatch(message);
}

export function connectTo(config: pg.ClientConfig): Promise<pg.Client> {
  const client = new pg.Client(config);
  return client.connect().then(() => client);
}
