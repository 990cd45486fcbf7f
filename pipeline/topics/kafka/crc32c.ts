/**
 * CRC-32C (Castagnoli), the checksum of Kafka record batches, eight bytes per step ("slicing by
 * 8"): about three times kafkajs' byte-at-a-time loop on produced batches.
 */

const POLYNOMIAL = 0x82f63b78;

/** TABLES[t * 256 + b]: the CRC of byte b followed by t zero bytes. */
const TABLES = new Int32Array(8 * 256);
for (let b = 0; b < 256; b++) {
  let c = b;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLYNOMIAL : c >>> 1;
  TABLES[b] = c;
}
for (let t = 1; t < 8; t++) {
  for (let b = 0; b < 256; b++) {
    const prev = TABLES[(t - 1) * 256 + b];
    TABLES[t * 256 + b] = (prev >>> 8) ^ TABLES[prev & 0xff];
  }
}

/** The CRC-32C of `bytes`, as an unsigned 32-bit integer. */
export function crc32c(bytes: Uint8Array): number {
  const T = TABLES;
  let crc = -1;
  let i = 0;
  for (const end = bytes.length - 8; i <= end; i += 8) {
    const low = crc ^
      (bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24));
    crc = T[1792 + (low & 0xff)] ^ T[1536 + ((low >>> 8) & 0xff)] ^
      T[1280 + ((low >>> 16) & 0xff)] ^ T[1024 + (low >>> 24)] ^
      T[768 + bytes[i + 4]] ^ T[512 + bytes[i + 5]] ^ T[256 + bytes[i + 6]] ^ T[bytes[i + 7]];
  }
  for (; i < bytes.length; i++) crc = T[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ -1) >>> 0;
}
