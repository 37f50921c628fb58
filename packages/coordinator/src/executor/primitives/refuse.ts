import type { HerdError } from "@herd/shared";
import { NO_INPUTS, type Primitive } from "./primitive.js";

/** A statement herd will not run: the planner's deferred error, given when it is executed. */
export class Refuse implements Primitive {
  readonly kind = "refuse";

  constructor(readonly error: HerdError) {}

  async execute(): Promise<void> {
    throw this.error;
  }

  describe(): string {
    return `Error ${this.error.sqlState}: ${this.error.message}`;
  }

  inputs(): readonly Primitive[] {
    return NO_INPUTS;
  }
}
