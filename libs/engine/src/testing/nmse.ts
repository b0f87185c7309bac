// Specs' error measures. nmse: normalized mean squared error of `got` against `ref`, sum (got - ref)^2 / sum ref^2
// (quantization checks).
export function nmse(ref: ArrayLike<number>, got: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    num += (got[i] - ref[i]) ** 2;
    den += ref[i] ** 2;
  }
  return num / den;
}

/** The largest |a[i] - b[i]|. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
