/** f64 and i32 views of a WebAssembly module's memory, made again once the memory has grown. */
export class MemoryViews {
  #f64: Float64Array;
  #i32: Int32Array;

  constructor(readonly memory: WebAssembly.Memory) {
    this.#f64 = new Float64Array(memory.buffer);
    this.#i32 = new Int32Array(memory.buffer);
  }

  get f64(): Float64Array {
    const buffer = this.memory.buffer;
    if (this.#f64.buffer !== buffer) this.#f64 = new Float64Array(buffer);
    return this.#f64;
  }

  get i32(): Int32Array {
    const buffer = this.memory.buffer;
    if (this.#i32.buffer !== buffer) this.#i32 = new Int32Array(buffer);
    return this.#i32;
  }
}
