import { HerdError, SqlState } from "@herd/shared";

/** What a session takes when it is admitted, and gives back when it ends. */
export interface SessionAdmission {
  /** Takes a slot; throws the FATAL 53300 the client gets when none is left for it. */
  take(superuser: boolean): Promise<void>;
  release(): void;
}

/**
 * The SQL port's session slots (HERD_MAX_CONNECTIONS), counted for the whole coordinator: held
 * by the first process, which the others ask (processes/sql-processes.ts), so that the limit
 * means what it says whichever process accepted a connection. The last `reserved` slots are for
 * superusers, as PostgreSQL's superuser_reserved_connections. `holder` is the process.
 */
export class SessionSlots {
  private readonly held = new Map<number, number>();
  private total = 0;

  constructor(
    private readonly max: number,
    private readonly reserved: number,
  ) {}

  take(holder: number, superuser: boolean): void {
    if (this.total >= this.max) {
      throw new HerdError("sorry, too many clients already", {
        sqlState: SqlState.tooManyConnections,
        severity: "FATAL",
      });
    }
    if (!superuser && this.total >= this.max - Math.min(this.reserved, this.max)) {
      throw new HerdError("remaining connection slots are reserved for roles with the SUPERUSER attribute", {
        sqlState: SqlState.tooManyConnections,
        severity: "FATAL",
      });
    }
    this.held.set(holder, (this.held.get(holder) ?? 0) + 1);
    this.total += 1;
  }

  release(holder: number): void {
    const count = this.held.get(holder) ?? 0;
    if (count === 0) return;
    this.held.set(holder, count - 1);
    this.total -= 1;
  }

  /** The holder (a process) is gone, and its sessions with it. */
  dropHolder(holder: number): void {
    this.total -= this.held.get(holder) ?? 0;
    this.held.delete(holder);
  }

  /** Slots of one holder, taken on its behalf. */
  admission(holder: number): SessionAdmission {
    return {
      take: async (superuser) => this.take(holder, superuser),
      release: () => this.release(holder),
    };
  }
}
