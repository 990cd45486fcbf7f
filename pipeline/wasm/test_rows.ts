/** What the operators' differential tests share: a seeded generator and rows of flat results. */

/** Park–Miller: a seeded generator, so a failure can be replayed. */
export function random(seed: number): () => number {
  let s = seed;
  return () => (s = (s * 48271) % 2147483647) / 2147483647;
}

/** Rows of `width` values of a flat array. */
export function rows(values: ArrayLike<number>, width: number): number[][] {
  const all = Array.from(values);
  const out: number[][] = [];
  for (let i = 0; i < all.length; i += width) out.push(all.slice(i, i + width));
  return out;
}

/** Rows sorted, so both implementations compare equal whatever order they write them in. */
export function canonical(r: number[][]): number[][] {
  return [...r].sort((a, b) => {
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] - b[i];
    return 0;
  });
}

/** Every page of a dump, as one array. */
export function joined(pages: Iterable<Float64Array>): Float64Array {
  const all = [...pages];
  const out = new Float64Array(all.reduce((n, p) => n + p.length, 0));
  all.reduce((at, p) => (out.set(p, at), at + p.length), 0);
  return out;
}
