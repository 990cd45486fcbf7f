/**
 * Little-endian binary writing and reading for the stores that persist binary pages. A page is
 * written into one growing buffer; strings are length-prefixed UTF-8, ASCII ones copied byte by
 * byte (a TextEncoder call per short string costs more than the copy).
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class ByteWriter {
  #buf = new Uint8Array(4096);
  #view = new DataView(this.#buf.buffer);
  #at = 0;

  get length(): number {
    return this.#at;
  }

  #fit(n: number): void {
    if (this.#at + n <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.#at + n) size *= 2;
    const buf = new Uint8Array(size);
    buf.set(this.#buf.subarray(0, this.#at));
    this.#buf = buf;
    this.#view = new DataView(buf.buffer);
  }

  u8(v: number): void {
    this.#fit(1);
    this.#buf[this.#at++] = v;
  }

  u16(v: number): void {
    this.#fit(2);
    this.#view.setUint16(this.#at, v, true);
    this.#at += 2;
  }

  u32(v: number): void {
    this.#fit(4);
    this.#view.setUint32(this.#at, v, true);
    this.#at += 4;
  }

  f64(v: number): void {
    this.#fit(8);
    this.#view.setFloat64(this.#at, v, true);
    this.#at += 8;
  }

  /** A string as its UTF-8 byte length (u16) and bytes. */
  str(s: string): void {
    this.#fit(2 + s.length);
    let ascii = true;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c > 0x7f) {
        ascii = false;
        break;
      }
      this.#buf[this.#at + 2 + i] = c;
    }
    if (ascii) {
      this.#view.setUint16(this.#at, s.length, true);
      this.#at += 2 + s.length;
      return;
    }
    const bytes = encoder.encode(s);
    this.u16(bytes.length);
    this.#fit(bytes.length);
    this.#buf.set(bytes, this.#at);
    this.#at += bytes.length;
  }

  /** A view of what was written so far (valid until the next write). */
  bytes(): Uint8Array {
    return this.#buf.subarray(0, this.#at);
  }

  /** What was written (a copy), and the writer emptied. */
  take(): Uint8Array {
    const out = this.#buf.slice(0, this.#at);
    this.#at = 0;
    return out;
  }
}

export class ByteReader {
  #at = 0;
  readonly #view: DataView;

  constructor(readonly bytes: Uint8Array) {
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get done(): boolean {
    return this.#at >= this.bytes.length;
  }

  u8(): number {
    return this.bytes[this.#at++];
  }

  u16(): number {
    return this.#view.getUint16((this.#at += 2) - 2, true);
  }

  u32(): number {
    return this.#view.getUint32((this.#at += 4) - 4, true);
  }

  f64(): number {
    return this.#view.getFloat64((this.#at += 8) - 8, true);
  }

  str(): string {
    const n = this.u16();
    return decoder.decode(this.bytes.subarray(this.#at, this.#at += n));
  }
}
