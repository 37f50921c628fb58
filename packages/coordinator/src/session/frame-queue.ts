import type { Frame } from "../protocol/message-framer.js";

/**
 * The client's messages not handled yet, first in first out. A COPY sends a message per row,
 * hundreds of thousands of them queued at once; `Array.shift()` moves the whole array each
 * time, this moves a read position and compacts now and then.
 */
export class FrameQueue {
  private items: Frame[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(frame: Frame): void {
    this.items.push(frame);
  }

  peek(): Frame | undefined {
    return this.items[this.head];
  }

  shift(): Frame | undefined {
    if (this.head >= this.items.length) return undefined;
    const frame = this.items[this.head] as Frame;
    this.head += 1;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head >= 4096 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return frame;
  }
}
