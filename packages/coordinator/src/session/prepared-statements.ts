import type { AnyNode } from "../parser/ast.js";
import type { BindMessage } from "../protocol/frontend-messages.js";

/** A statement the client prepared (Parse), as herd classified it. */
export interface PreparedStatement {
  readonly sql: string;
  readonly statement: AnyNode | undefined;
  readonly parameterTypes: readonly number[];
  /** herd runs it (else the coordinator's PostgreSQL has it, under the client's name). */
  herd: boolean;
  /** The catalog version it was classified under. */
  version: number;
}

/** A portal (Bind) of a statement herd runs; portals of other statements live in the coordinator's PostgreSQL. */
export interface HerdPortal {
  readonly statement: PreparedStatement;
  readonly bind: BindMessage;
  /** The client asked to Describe it: its RowDescription goes with the rows at Execute. */
  describe: boolean;
}

/**
 * The extended protocol's named objects of one session: every prepared statement (herd's and the
 * ones the coordinator's PostgreSQL holds, so a name is known whichever runs it) and the portals
 * of herd's statements. Portals end with the transaction, as PostgreSQL's do.
 */
export class PreparedStatements {
  private readonly statements = new Map<string, PreparedStatement>();
  private readonly portals = new Map<string, HerdPortal>();

  statement(name: string): PreparedStatement | undefined {
    return this.statements.get(name);
  }

  prepare(name: string, statement: PreparedStatement): void {
    this.statements.set(name, statement);
  }

  closeStatement(name: string): void {
    this.statements.delete(name);
  }

  portal(name: string): HerdPortal | undefined {
    return this.portals.get(name);
  }

  bind(name: string, portal: HerdPortal): void {
    this.portals.set(name, portal);
  }

  /** Forgets a portal; true when it was herd's. */
  closePortal(name: string): boolean {
    return this.portals.delete(name);
  }

  /** The transaction ended: its portals are gone. */
  endTransaction(): void {
    this.portals.clear();
  }
}
