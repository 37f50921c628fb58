import { type AnyNode, cloneTree, parseStatements } from "../parser/ast.js";

/**
 * Parse-tree pieces the executor builds statements from: literals, casts, expressions taken from
 * the catalog (column defaults), all as nodes, so that values never become SQL text by pasting.
 */
const expressions = new Map<string, AnyNode>();
const typeNames = new Map<string, AnyNode>();

/** An expression written in SQL (a column default from pg_get_expr), as a node. */
export function expressionNode(sql: string): AnyNode {
  let node = expressions.get(sql);
  if (!node) {
    node = (parseStatements(`SELECT ${sql}`)[0] as AnyNode).SelectStmt.targetList[0].ResTarget.val as AnyNode;
    expressions.set(sql, node);
  }
  return cloneTree(node);
}

/** A type as `format_type()` writes it (`character varying(20)`), as a TypeName node. */
export function typeNameNode(typeName: string): AnyNode {
  let node = typeNames.get(typeName);
  if (!node) {
    node = (parseStatements(`SELECT NULL::${typeName}`)[0] as AnyNode).SelectStmt.targetList[0].ResTarget.val.TypeCast
      .typeName as AnyNode;
    typeNames.set(typeName, node);
  }
  return cloneTree(node);
}

export function castNode(arg: AnyNode, typeName: string): AnyNode {
  return { TypeCast: { arg, typeName: typeNameNode(typeName) } };
}

/** A literal of a column's type from its text form (`'42'::integer`), or NULL. */
export function literalNode(text: string | null, typeName: string): AnyNode {
  const constant = text === null ? { A_Const: { isnull: true } } : { A_Const: { sval: { sval: text } } };
  return castNode(constant, typeName);
}

export function nullNode(): AnyNode {
  return { A_Const: { isnull: true } };
}

/**
 * Puts `subquery` where a FROM item names a table or view (`holder` is the `{RangeVar: …}` node),
 * under the name the statement used for it (its alias, else `name`) and `colnames` when given (or
 * the statement's own column aliases): what reads the table reads the subquery's rows instead.
 */
export function replaceRangeVar(holder: AnyNode, subquery: AnyNode, name: string, colnames?: readonly string[]): void {
  const rangeVar = holder.RangeVar as AnyNode;
  const aliased =
    (rangeVar.alias?.colnames as AnyNode[] | undefined) ?? colnames?.map((sval) => ({ String: { sval } }));
  delete holder.RangeVar;
  holder.RangeSubselect = {
    subquery,
    alias: {
      aliasname: (rangeVar.alias?.aliasname as string | undefined) ?? name,
      ...(aliased ? { colnames: aliased } : {}),
    },
  };
}
