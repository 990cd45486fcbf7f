// Window assignment for tumbling and hopping windows, run for every record a time-window
// aggregation sees. Results go to a scratch array the host reads through `scratch()`.

let scratchPtr: usize = 0;
let scratchLength: i32 = 0;

/** Makes room for `windows` results (the most windows one record can fall in); returns the array. */
export function reserve(windows: i32): usize {
  if (windows > scratchLength) {
    scratchPtr = heap.alloc(<usize>windows << 3);
    scratchLength = windows;
  }
  return scratchPtr;
}

/**
 * Writes the starts of the windows [start, start + size) that contain `timestamp` and are still
 * open (start + size + grace > streamTime), ascending, and returns how many. 0 means the record
 * is late: every window holding it has closed. Starts are multiples of `advance` (epoch-aligned).
 */
export function assign(timestamp: f64, size: f64, advance: f64, grace: f64, streamTime: f64): i32 {
  const lastStart = timestamp - floorMod(timestamp, advance);
  // Earliest start s with s > timestamp - size.
  let first = lastStart - (Math.ceil((lastStart - timestamp + size) / advance) - 1) * advance;
  let n: i32 = 0;
  for (let s = first; s <= lastStart && n < scratchLength; s += advance) {
    if (s + size + grace > streamTime) {
      store<f64>(scratchPtr + (<usize>n << 3), s);
      n++;
    }
  }
  return n;
}

/** How many windows of `size` starting every `advance` contain one instant. */
export function windowsPerRecord(size: f64, advance: f64): i32 {
  return <i32>Math.ceil(size / advance);
}

function floorMod(a: f64, n: f64): f64 {
  const r = a % n;
  return r < 0 ? r + n : r;
}
