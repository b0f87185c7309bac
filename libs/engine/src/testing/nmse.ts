// Normalized mean squared error of `got` against `ref`: sum (got - ref)^2 / sum ref^2 (specs' quantization checks).
export function nmse(ref: ArrayLike<number>, got: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    num += (got[i] - ref[i]) ** 2;
    den += ref[i] ** 2;
  }
  return num / den;
}
