import { describe, expect, it } from "vitest";
import { hashRanges, shardIndexForHash } from "./shard-ranges.js";

describe("hash ranges", () => {
  it("cut the int32 space like Citus: 32 shards of 2^27, the first ending at -2013265921", () => {
    const ranges = hashRanges(32);
    expect(ranges[0]).toEqual({ min: -2147483648, max: -2013265921 });
    expect(ranges[31]).toEqual({ min: 2013265920, max: 2147483647 });
  });

  it.each([1, 2, 3, 7, 32, 100, 1000])(
    "cover every int32 exactly once for %i shards, the last taking the remainder",
    (count) => {
      const ranges = hashRanges(count);
      expect(ranges).toHaveLength(count);
      expect(ranges[0]?.min).toBe(-2147483648);
      expect(ranges.at(-1)?.max).toBe(2147483647);
      for (let i = 1; i < count; i += 1) expect(ranges[i]?.min).toBe((ranges[i - 1]?.max as number) + 1);
    },
  );

  it("finds the range holding a hash, at the edges and for random hashes", () => {
    for (const count of [1, 3, 32, 1000]) {
      const ranges = hashRanges(count);
      const probes = [-2147483648, 2147483647, 0, -1, ...ranges.flatMap((r) => [r.min, r.max])];
      for (let i = 0; i < 2000; i += 1) probes.push(Math.floor(Math.random() * 2 ** 32) - 2 ** 31);
      for (const hash of probes) {
        const range = ranges[shardIndexForHash(hash, count)] as { min: number; max: number };
        expect(hash >= range.min && hash <= range.max, `${hash} in ${count} shards`).toBe(true);
      }
    }
    expect(shardIndexForHash(-205084363, 4)).toBe(1); // hashint4(123)
  });

  it("refuses a shard count that is not a positive integer", () => {
    expect(() => hashRanges(0)).toThrow(RangeError);
    expect(() => hashRanges(2.5)).toThrow(RangeError);
  });
});
