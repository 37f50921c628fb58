export { hashBytes, hashUint32 } from "./hash-bytes.js";
export * from "./pg-hash.js";
export { type HashRange, hashRanges, shardIndexForHash } from "./shard-ranges.js";
