/**
 * Kafka's varints (zigzag-encoded, 7 bits per byte, low bits first) in number arithmetic, for
 * the replacements of kafkajs' encoders.
 */

/** |value| below this: its 64-bit zigzag form is a safe integer, written with float arithmetic. */
const SAFE_VARLONG = 2 ** 51;

/** Whether `value` is an integer a varlong can be written for here (else kafkajs' BigInt path). */
export function isVarlongNumber(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && Math.abs(value) < SAFE_VARLONG;
}

export function zigZag32(v: number): number {
  return ((v << 1) ^ (v >> 31)) >>> 0;
}

export function zigZag64(v: number): number {
  return v >= 0 ? v * 2 : -v * 2 - 1;
}

/** Bytes of an unsigned varint (`z` below 2^53). */
export function varintSize(z: number): number {
  let n = 1;
  while (z >= 0x80) {
    z = Math.floor(z / 0x80);
    n++;
  }
  return n;
}

export function writeVarint(out: Uint8Array, at: number, z: number): number {
  while (z >= 0x80) {
    out[at++] = (z % 0x80) | 0x80;
    z = Math.floor(z / 0x80);
  }
  out[at++] = z;
  return at;
}
