/**
 * Hash distribution as Citus does it: the int32 hash space is cut into `shardCount` ranges of
 * equal width (2^32 / shardCount, rounded down), the last range absorbing the remainder.
 * Worked example, 4 shards: [-2147483648, -1073741825], [-1073741824, -1], [0, 1073741823],
 * [1073741824, 2147483647]; hashint4(123) = -205084363 falls in the second, shard index 1.
 */
export interface HashRange {
  readonly min: number;
  readonly max: number;
}

const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;
const HASH_TOKEN_COUNT = 2 ** 32;

export function hashRanges(shardCount: number): HashRange[] {
  if (!Number.isInteger(shardCount) || shardCount < 1) throw new RangeError("shard count must be a positive integer");
  const width = Math.floor(HASH_TOKEN_COUNT / shardCount);
  const ranges: HashRange[] = [];
  for (let i = 0; i < shardCount; i += 1) {
    const min = INT32_MIN + i * width;
    const max = i === shardCount - 1 ? INT32_MAX : min + width - 1;
    ranges.push({ min, max });
  }
  return ranges;
}

/** The index of the range holding `hash`, in O(1). */
export function shardIndexForHash(hash: number, shardCount: number): number {
  const width = Math.floor(HASH_TOKEN_COUNT / shardCount);
  return Math.min(Math.floor((hash - INT32_MIN) / width), shardCount - 1);
}
