/**
 * The literals of a simple-protocol statement as parameters (after pg_stat_statements and
 * Vitess): `SELECT abalance FROM accounts WHERE aid = 4711` becomes `… WHERE aid = $1` with
 * `4711` as the value of $1, typed as PostgreSQL types the literal (int4, int8 or numeric for a
 * number; unknown, resolved by its context, for a quoted string). Statements that differ only in
 * their literals then share one text, one parse and one plan.
 *
 * Only literals in value positions are replaced: after a comparison or arithmetic operator, `(`,
 * `,`, AND/OR/WHEN/THEN/ELSE/LIKE/ILIKE/BETWEEN/LIMIT/OFFSET; never in a select or RETURNING list
 * (a string there would have no type) nor in ORDER BY/GROUP BY/PARTITION BY/DISTINCT ON (their
 * expressions must match the select list's as written, and a bare number is an ordinal), never a typed
 * literal (`date '…'`, `interval '…'`), an escape string (E'…'), a bit string, a dollar-quoted
 * string, or a string holding a backslash. A statement with parameters already, or more than
 * one statement, is left alone. The parse of the result is checked again
 * (normalized-statements.ts) before it is used.
 */

/** Type OIDs of the literals as PostgreSQL's parser types them. */
export const INT4_OID = 23;
export const INT8_OID = 20;
export const NUMERIC_OID = 1700;
export const UNKNOWN_OID = 0;

export interface NormalizedText {
  /** The statement with `$n` for each replaced literal. */
  readonly text: string;
  /** Each parameter's value (a string literal's content, unquoted) and type. */
  readonly values: readonly string[];
  readonly types: readonly number[];
}

const VALUE_KEYWORDS = new Set(["and", "or", "when", "then", "else", "like", "ilike", "between", "limit", "offset"]);
const VALUE_OPERATORS = new Set(["=", "<>", "!=", "<", ">", "<=", ">=", "(", ",", "+", "-", "*", "/", "%", "||"]);
/** Keywords that end a select list, a RETURNING list or an ORDER BY/GROUP BY list at their depth. */
const LIST_ENDS = new Set([
  "from",
  "where",
  "group",
  "having",
  "window",
  "order",
  "limit",
  "offset",
  "fetch",
  "for",
  "union",
  "intersect",
  "except",
  "into",
  "returning",
  "on",
]);
type Clause = "list" | "other";
const OPERATOR_CHARS = "+-*/<>=~!@#%^&|`?";
const INT4_MAX = 2147483647n;
const INT8_MAX = 9223372036854775807n;

/**
 * Longer statements (a bulk INSERT … VALUES) are left as written: each is seldom repeated, the
 * caches keep none of them, and PostgreSQL takes at most 65 535 parameters.
 */
export const MAX_NORMALIZED_LENGTH = 16 * 1024;

/** The statement with its literals as parameters; undefined when nothing was replaced or it cannot be. */
export function normalizeLiterals(sql: string): NormalizedText | undefined {
  if (sql.length > MAX_NORMALIZED_LENGTH) return undefined;
  const out: string[] = [];
  const values: string[] = [];
  const types: number[] = [];
  let previous = "";
  let depth = 0;
  /**
   * The clause being read at each parenthesis depth: a select or RETURNING list, an ORDER BY /
   * GROUP BY / PARTITION BY / DISTINCT ON list (whose expressions must match the select list's
   * as written), or anything else. A parenthesis inherits its outer clause (a function's arguments
   * in a select list are in it); a subquery's SELECT starts its own.
   */
  const clauses: Clause[] = ["other"];
  let i = 0;
  const n = sql.length;
  const copy = (end: number) => {
    out.push(sql.slice(i, end));
    i = end;
  };
  while (i < n) {
    const c = sql[i] as string;
    const next = sql[i + 1];
    if (c === " " || c === "\t" || c === "\n" || c === "\r" || c === "\f") {
      copy(i + 1);
      continue;
    }
    if (c === "-" && next === "-") {
      const end = sql.indexOf("\n", i);
      copy(end < 0 ? n : end);
      continue;
    }
    if (c === "/" && next === "*") {
      const end = blockCommentEnd(sql, i);
      if (end < 0) return undefined;
      copy(end);
      continue;
    }
    if (c === "$") {
      // $1 (parameterized already) or a dollar quote: left alone
      return undefined;
    }
    if (c === ";") {
      // a trailing semicolon is fine; another statement after it is not
      if (sql.slice(i + 1).trim() !== "") return undefined;
      copy(n);
      break;
    }
    if (c === "'") {
      const end = quotedEnd(sql, i, "'");
      if (end < 0) return undefined;
      const body = sql.slice(i + 1, end - 1);
      const typed = /^[A-Za-z_]/.test(previous) && !VALUE_KEYWORDS.has(previous);
      if (!typed && eligible() && !body.includes("\\")) {
        replace(body.replaceAll("''", "'"), UNKNOWN_OID, end);
      } else copy(end);
      previous = "'";
      continue;
    }
    if (c === '"') {
      const end = quotedEnd(sql, i, '"');
      if (end < 0) return undefined;
      copy(end);
      previous = "ident";
      continue;
    }
    if (isDigit(c) || (c === "." && next !== undefined && isDigit(next))) {
      const end = numberEnd(sql, i);
      const token = sql.slice(i, end);
      const type = numberType(token);
      const followedByWord = end < n && /[A-Za-z_0-9.]/.test(sql[end] as string);
      if (type !== undefined && !followedByWord && eligible()) replace(token, type, end);
      else copy(end);
      previous = "0";
      continue;
    }
    if (isWordStart(c)) {
      let end = i + 1;
      while (end < n && isWordPart(sql[end] as string)) end += 1;
      const word = sql.slice(i, end).toLowerCase();
      // a prefixed string (E'…', B'…', X'…', N'…', U&'…') is left as it is, with its prefix
      if (sql[end] === "'" || (word === "u" && sql[end] === "&")) {
        const start = sql[end] === "&" ? end + 1 : end;
        if (sql[start] !== "'") return undefined;
        const close = word === "e" ? escapeStringEnd(sql, start) : quotedEnd(sql, start, "'");
        if (close < 0) return undefined;
        copy(close);
        previous = "'";
        continue;
      }
      copy(end);
      if (word === "select" || word === "returning") clauses[depth] = "list";
      else if (word === "by" && (previous === "order" || previous === "group" || previous === "partition"))
        clauses[depth] = "list";
      else if (word === "on" && previous === "distinct") clauses[depth] = "list";
      else if (LIST_ENDS.has(word) && !(word === "into" && clauses[depth] === "list")) clauses[depth] = "other";
      previous = word;
      continue;
    }
    // operators (as PostgreSQL's lexer cuts them) and punctuation
    const operator = OPERATOR_CHARS.includes(c) ? operatorAt(sql, i) : sql[i + 1] === ":" && c === ":" ? "::" : c;
    if (operator === "(") {
      depth += 1;
      clauses[depth] = clauses[depth - 1] as Clause;
    } else if (operator === ")" && depth > 0) depth -= 1;
    copy(i + operator.length);
    previous = operator;
  }
  return values.length === 0 ? undefined : { text: out.join(""), values, types };

  function eligible(): boolean {
    return clauses[depth] === "other" && (VALUE_OPERATORS.has(previous) || VALUE_KEYWORDS.has(previous));
  }

  function replace(value: string, type: number, end: number): void {
    values.push(value);
    types.push(type);
    out.push(`$${values.length}`);
    i = end;
  }
}

/** The type PostgreSQL's parser gives a numeric literal; undefined for forms left alone (0x1F, 1_000). */
function numberType(token: string): number | undefined {
  if (/^[0-9]+$/.test(token)) {
    const value = BigInt(token);
    if (value <= INT4_MAX) return INT4_OID;
    if (value <= INT8_MAX) return INT8_OID;
    return NUMERIC_OID;
  }
  if (/^([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$/.test(token)) return NUMERIC_OID;
  return undefined;
}

/**
 * The operator starting at `start`: the longest run of operator characters, less a trailing + or
 * - unless it holds one of ~!@#%^&|`? (so `=-5` is `=` then `-`), as PostgreSQL's lexer reads it.
 */
function operatorAt(sql: string, start: number): string {
  let end = start;
  while (end < sql.length && OPERATOR_CHARS.includes(sql[end] as string)) {
    // a comment starts inside the run: the operator ends before it
    if ((sql[end] === "-" && sql[end + 1] === "-") || (sql[end] === "/" && sql[end + 1] === "*")) break;
    end += 1;
  }
  let operator = sql.slice(start, Math.max(end, start + 1));
  while (operator.length > 1 && /[+-]$/.test(operator) && !/[~!@#%^&|`?]/.test(operator))
    operator = operator.slice(0, -1);
  return operator;
}

function numberEnd(sql: string, start: number): number {
  let i = start;
  while (i < sql.length && /[0-9A-Za-z_.]/.test(sql[i] as string)) {
    // an exponent's sign belongs to the number
    if ((sql[i] === "e" || sql[i] === "E") && (sql[i + 1] === "+" || sql[i + 1] === "-")) i += 1;
    // `1..5` is not a number followed by a number: stop before the second dot
    if (sql[i] === "." && sql[i + 1] === ".") break;
    i += 1;
  }
  return i;
}

/** Where a quoted string or identifier ends (after its closing quote; a doubled quote is part of it); -1 if it does not. */
function quotedEnd(sql: string, start: number, quote: string): number {
  let i = start + 1;
  for (;;) {
    const close = sql.indexOf(quote, i);
    if (close < 0) return -1;
    if (sql[close + 1] === quote) {
      i = close + 2;
      continue;
    }
    return close + 1;
  }
}

/** Where an E'…' string ends (backslash escapes, doubled quotes). */
function escapeStringEnd(sql: string, start: number): number {
  for (let i = start + 1; i < sql.length; i += 1) {
    if (sql[i] === "\\") i += 1;
    else if (sql[i] === "'") {
      if (sql[i + 1] === "'") i += 1;
      else return i + 1;
    }
  }
  return -1;
}

/** Where a (possibly nested) block comment starting at `start` ends; -1 if it does not. */
function blockCommentEnd(sql: string, start: number): number {
  let depth = 0;
  for (let i = start; i < sql.length - 1; i += 1) {
    if (sql[i] === "/" && sql[i + 1] === "*") {
      depth += 1;
      i += 1;
    } else if (sql[i] === "*" && sql[i + 1] === "/") {
      depth -= 1;
      i += 1;
      if (depth === 0) return i + 1;
    }
  }
  return -1;
}

function isDigit(c: string): boolean {
  return c >= "0" && c <= "9";
}

function isWordStart(c: string): boolean {
  return (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || c === "_" || c > "\u007f";
}

function isWordPart(c: string): boolean {
  return isWordStart(c) || isDigit(c) || c === "$";
}
