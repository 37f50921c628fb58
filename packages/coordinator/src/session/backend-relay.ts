import type { Exchange, PgConnection } from "../connection/pg-connection.js";
import type { ResultSink } from "../executor/result-sink.js";
import { BufferReader } from "../protocol/buffer-reader.js";
import type { ClientOutput } from "../protocol/client-output.js";
import { BackendMessage } from "../protocol/message-codes.js";
import { type Frame, joinFrames } from "../protocol/message-framer.js";

/**
 * Relays the coordinator's PostgreSQL's answers to the client, gathered per received chunk into
 * one write, noting ParameterStatus changes (settings workers must share) and errors. Messages
 * nobody asked for (a notification between statements) go straight through.
 */
export class BackendRelay {
  constructor(
    private readonly output: ClientOutput,
    private readonly backend: PgConnection,
    private readonly onSetting: (name: string, value: string) => void,
  ) {
    backend.unsolicited = (frame) => {
      this.note(frame);
      this.output.raw(frame.raw);
      this.output.flush();
    };
  }

  /**
   * An exchange relaying everything, with (`dropReady` false) or without its ReadyForQuery;
   * `dropParseBind` drops ParseComplete and BindComplete of a statement herd already answered.
   * The answers go to the client, or to `sink` (a primitive's relay through the ExecutionPort).
   */
  exchange(dropReady: boolean, dropParseBind = false, sink?: ResultSink): Exchange & { sawError: boolean } {
    const relay = this;
    let pending: Frame[] = [];
    return {
      sawError: false,
      message(frame: Frame) {
        if (frame.type === BackendMessage.errorResponse) this.sawError = true;
        relay.note(frame);
        if (frame.type === BackendMessage.readyForQuery && dropReady) return;
        if (
          dropParseBind &&
          (frame.type === BackendMessage.parseComplete || frame.type === BackendMessage.bindComplete)
        )
          return;
        pending.push(frame);
      },
      chunkEnd() {
        if (pending.length === 0) return;
        // a slow client holds PostgreSQL back instead of filling the coordinator's memory
        const bytes = joinFrames(pending);
        pending = [];
        if (!sink) {
          if (!relay.output.write(bytes)) relay.backend.pause(); // resumed by the client socket's drain
        } else if (sink.raw(bytes) === false && sink.onceDrained) {
          relay.backend.pause();
          sink.onceDrained(() => relay.backend.resume());
        }
      },
    };
  }

  private note(frame: Frame): void {
    if (frame.type !== BackendMessage.parameterStatus) return;
    const reader = new BufferReader(frame.body);
    this.onSetting(reader.cstring(), reader.cstring());
  }
}
