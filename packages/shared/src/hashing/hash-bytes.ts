/**
 * PostgreSQL's generic hash (src/common/hashfn.c): Bob Jenkins' lookup3, as `hash_bytes` and
 * `hash_bytes_uint32`, for a little-endian machine (x86-64, arm64: what PostgreSQL runs on here;
 * a big-endian server would hash multi-byte input differently).
 *
 * Results are returned as PostgreSQL shows them in SQL: signed int32. Worked example:
 * hashUint32(123) starts from a = b = c = 0x9e3779b9 + 4 + 3923095, adds 123 to a, runs `final`,
 * and returns c as int32: -205084363, which is `SELECT hashint4(123)`.
 */

function rot(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

type State = [number, number, number];

function mix(s: State): void {
  let [a, b, c] = s;
  a = (a - c) >>> 0;
  a = (a ^ rot(c, 4)) >>> 0;
  c = (c + b) >>> 0;
  b = (b - a) >>> 0;
  b = (b ^ rot(a, 6)) >>> 0;
  a = (a + c) >>> 0;
  c = (c - b) >>> 0;
  c = (c ^ rot(b, 8)) >>> 0;
  b = (b + a) >>> 0;
  a = (a - c) >>> 0;
  a = (a ^ rot(c, 16)) >>> 0;
  c = (c + b) >>> 0;
  b = (b - a) >>> 0;
  b = (b ^ rot(a, 19)) >>> 0;
  a = (a + c) >>> 0;
  c = (c - b) >>> 0;
  c = (c ^ rot(b, 4)) >>> 0;
  b = (b + a) >>> 0;
  s[0] = a;
  s[1] = b;
  s[2] = c;
}

function final(s: State): void {
  let [a, b, c] = s;
  c = (c ^ b) >>> 0;
  c = (c - rot(b, 14)) >>> 0;
  a = (a ^ c) >>> 0;
  a = (a - rot(c, 11)) >>> 0;
  b = (b ^ a) >>> 0;
  b = (b - rot(a, 25)) >>> 0;
  c = (c ^ b) >>> 0;
  c = (c - rot(b, 16)) >>> 0;
  a = (a ^ c) >>> 0;
  a = (a - rot(c, 4)) >>> 0;
  b = (b ^ a) >>> 0;
  b = (b - rot(a, 14)) >>> 0;
  c = (c ^ b) >>> 0;
  c = (c - rot(b, 24)) >>> 0;
  s[0] = a;
  s[1] = b;
  s[2] = c;
}

/** `hash_bytes(k, len)`: PostgreSQL's `hash_any`. */
export function hashBytes(key: Uint8Array): number {
  let length = key.length;
  const init = (0x9e3779b9 + length + 3923095) >>> 0;
  const s: State = [init, init, init];
  let k = 0;
  const word = (at: number) =>
    ((key[at] as number) |
      ((key[at + 1] as number) << 8) |
      ((key[at + 2] as number) << 16) |
      ((key[at + 3] as number) << 24)) >>>
    0;
  while (length >= 12) {
    s[0] = (s[0] + word(k)) >>> 0;
    s[1] = (s[1] + word(k + 4)) >>> 0;
    s[2] = (s[2] + word(k + 8)) >>> 0;
    mix(s);
    k += 12;
    length -= 12;
  }
  // The last 0..11 bytes, little-endian: bytes 0-3 into a, 4-7 into b, 8-10 into c shifted up
  // one byte (the lowest byte of c is reserved for the length).
  for (let i = 0; i < length; i += 1) {
    const value = key[k + i] as number;
    if (i < 4) s[0] = (s[0] + value * 2 ** (8 * i)) >>> 0;
    else if (i < 8) s[1] = (s[1] + value * 2 ** (8 * (i - 4))) >>> 0;
    else s[2] = (s[2] + value * 2 ** (8 * (i - 7))) >>> 0;
  }
  final(s);
  return s[2] | 0;
}

/** `hash_bytes_uint32(k)`: PostgreSQL's `hash_uint32`, the same as hashing k's 4 bytes. */
export function hashUint32(k: number): number {
  const init = (0x9e3779b9 + 4 + 3923095) >>> 0;
  const s: State = [(init + (k >>> 0)) >>> 0, init, init];
  final(s);
  return s[2] | 0;
}
