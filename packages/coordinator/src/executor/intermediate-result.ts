import { HerdError, SqlState } from "@herd/shared";
import { ServerError } from "../connection/server-error.js";
import type { AnyNode } from "../parser/ast.js";
import {
  decodeDataRow,
  decodeNotice,
  decodeRowDescription,
  type FieldDescription,
  type NoticeFields,
} from "../protocol/backend-messages.js";
import { BackendMessage } from "../protocol/message-codes.js";
import { MessageFramer } from "../protocol/message-framer.js";
import type { ResultSink } from "./result-sink.js";
import { literalNode } from "./sql-nodes.js";

/** Citus's setting of the same name: how big a subplan's rows may grow (kB unless a unit is given; -1: no limit). */
export const MAX_INTERMEDIATE_RESULT_SIZE = "citus.max_intermediate_result_size";
const DEFAULT_LIMIT_BYTES = 1024 ** 3;
const UNITS: Record<string, number> = { "": 1024, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3, tb: 1024 ** 4 };

/** The limit in bytes from the setting's text (undefined: not set, 1 GB); Infinity for -1. */
export function intermediateResultLimit(setting: string | undefined | null): number {
  if (setting === undefined || setting === null || setting.trim() === "") return DEFAULT_LIMIT_BYTES;
  const match = /^\s*(-?\d+)\s*([kKmMgGtT][bB])?\s*$/.exec(setting);
  if (!match) {
    throw new HerdError(`invalid value for ${MAX_INTERMEDIATE_RESULT_SIZE}: "${setting}"`, {
      sqlState: SqlState.invalidParameterValue,
      hint: "Give a size such as 1GB, 512MB or 64kB, or -1 for no limit.",
    });
  }
  const amount = Number(match[1]);
  if (amount < 0) return Number.POSITIVE_INFINITY;
  return amount * (UNITS[(match[2] ?? "").toLowerCase()] as number);
}

/**
 * A sink that takes a statement's rows as text (RowDescription, DataRows, notices): what a
 * subplan's rows are kept as. `add` decides where each row goes. A statement relayed here whole
 * (the coordinator's own PostgreSQL answering it) may end in an ErrorResponse: it is kept, and
 * `throwIfFailed` fails the statement that used the rows with it (it once went unseen, and an
 * INSERT … SELECT whose SELECT failed inserted nothing and said INSERT 0 0).
 */
export abstract class TextRowSink implements ResultSink {
  /** The statement's result columns. */
  columns: readonly FieldDescription[] = [];
  readonly notices: NoticeFields[] = [];
  private failure: ServerError | undefined;

  raw(message: Buffer): boolean {
    for (const frame of new MessageFramer(1 << 30).push(message)) {
      if (frame.type === BackendMessage.dataRow) this.add(decodeDataRow(frame.body));
      else if (frame.type === BackendMessage.rowDescription) this.columns = decodeRowDescription(frame.body);
      else if (frame.type === BackendMessage.noticeResponse) this.notices.push(decodeNotice(frame.body));
      else if (frame.type === BackendMessage.errorResponse) this.failure ??= new ServerError(decodeNotice(frame.body));
    }
    return this.accepting();
  }

  /** Throws the error the statement's server answered with, if it did. */
  throwIfFailed(): void {
    if (this.failure) throw this.failure;
  }

  onceDrained(resume: () => void): void {
    resume();
  }

  fields(fields: readonly FieldDescription[]): void {
    this.columns = fields;
  }

  row(values: readonly (Buffer | string | null)[]): void {
    this.add(values);
  }

  noData(): void {}

  notice(fields: NoticeFields): void {
    this.notices.push(fields);
  }

  complete(): void {}

  copyIn(): void {
    throw new HerdError("a subquery cannot run COPY", { sqlState: SqlState.featureNotSupported });
  }

  flush(): void {}

  /** Takes one row. */
  protected abstract add(values: readonly (Buffer | string | null)[]): void;

  /** False: the sender should wait for `onceDrained` before sending more. */
  protected accepting(): boolean {
    return true;
  }
}

/** A row's values as text, and their size as IntermediateResult and RowSpool count it (a length word per value). */
export function textRow(values: readonly (Buffer | string | null)[]): { row: (string | null)[]; bytes: number } {
  let bytes = 0;
  const row = values.map((value) => {
    if (value === null) {
      bytes += 4;
      return null;
    }
    const text = value.toString();
    bytes += text.length + 4;
    return text;
  });
  return { row, bytes };
}

/** Rows as a bare `VALUES (…), (…)` of typed literals (at least one row). */
export function valuesListOf(rows: readonly (readonly (string | null)[])[], typeNames: readonly string[]): AnyNode {
  const valuesLists = rows.map((row) => ({
    List: { items: row.map((value, i) => literalNode(value, typeNames[i] as string)) },
  }));
  return { SelectStmt: { valuesLists, limitOption: "LIMIT_OPTION_DEFAULT", op: "SETOP_NONE" } };
}

/**
 * The rows of a subplan, kept as text on the coordinator until the statement that uses them
 * runs (after Citus's intermediate results). Rows past the limit are not kept: `check()` then
 * fails the statement with the setting's name.
 */
export class IntermediateResult extends TextRowSink {
  readonly rows: (string | null)[][] = [];
  /** Bytes of the rows kept (as text, with a length word per value). */
  bytes = 0;
  private exceeded = false;

  constructor(private readonly limitBytes: number) {
    super();
  }

  /** Throws the server's error, if the subplan ended in one, or when the rows grew past the limit. */
  check(): void {
    this.throwIfFailed();
    if (!this.exceeded) return;
    throw new HerdError(
      `the intermediate result size exceeds ${MAX_INTERMEDIATE_RESULT_SIZE} (currently ${this.limitText()})`,
      {
        sqlState: SqlState.programLimitExceeded,
        detail: "A subquery on distributed tables is run first and its rows are kept on the coordinator.",
        hint: `Raise ${MAX_INTERMEDIATE_RESULT_SIZE} (-1 for no limit), or filter the subquery further.`,
      },
    );
  }

  /**
   * The rows as a subquery PostgreSQL reads like the one they came from: `SELECT * FROM (VALUES
   * ('1'::integer), …) v (b)`, or with no rows `SELECT NULL::integer AS b WHERE false`.
   */
  valuesSelect(typeNames: readonly string[]): AnyNode {
    return rowsSelect(
      this.columns.map((field) => field.name),
      this.rows,
      typeNames,
    );
  }

  protected add(values: readonly (Buffer | string | null)[]): void {
    if (this.exceeded) return;
    const { row, bytes } = textRow(values);
    this.bytes += bytes;
    if (this.bytes > this.limitBytes) {
      this.exceeded = true;
      this.rows.length = 0;
      return;
    }
    this.rows.push(row);
  }

  private limitText(): string {
    return this.limitBytes === Number.POSITIVE_INFINITY ? "-1" : `${Math.round(this.limitBytes / 1024)}kB`;
  }
}

/**
 * Rows as a subquery with the columns `names`: `SELECT * FROM (VALUES ('1'::integer), …)
 * herd_subplan (b)`, or with no rows `SELECT NULL::integer AS b WHERE false`.
 */
export function rowsSelect(
  names: readonly string[],
  rows: readonly (readonly (string | null)[])[],
  typeNames: readonly string[],
): AnyNode {
  if (rows.length === 0) {
    return {
      SelectStmt: {
        targetList: names.map((name, i) => ({
          ResTarget: { name, val: literalNode(null, typeNames[i] as string) },
        })),
        whereClause: { A_Const: { boolval: { boolval: false } } },
        op: "SETOP_NONE",
      },
    };
  }
  const { valuesLists } = valuesListOf(rows, typeNames).SelectStmt;
  return {
    SelectStmt: {
      targetList: [{ ResTarget: { val: { ColumnRef: { fields: [{ A_Star: {} }] } } } }],
      fromClause: [
        {
          RangeSubselect: {
            subquery: { SelectStmt: { valuesLists, op: "SETOP_NONE" } },
            alias: { aliasname: "herd_subplan", colnames: names.map((name) => ({ String: { sval: name } })) },
          },
        },
      ],
      op: "SETOP_NONE",
    },
  };
}
