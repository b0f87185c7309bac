import { bf16BitsToF32, decodeHalf, encodeHalf, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from './half';

describe('half conversions', () => {
  it('round-trips representable values and rounds to nearest', () => {
    for (const v of [0, 1, -2, 0.5, 65504, -0.00006103515625, 1.5, 3.140625]) expect(f16BitsToF32(f32ToF16Bits(v))).toBe(v);
    expect(f32ToF16Bits(1)).toBe(0x3c00);
    expect(f32ToF16Bits(1e6)).toBe(0x7c00);
    expect(f16BitsToF32(f32ToF16Bits(5.96e-8))).toBeCloseTo(5.96e-8, 10);
    expect(f32ToBf16Bits(1)).toBe(0x3f80);
    expect(bf16BitsToF32(f32ToBf16Bits(3.140625))).toBe(3.140625);
    const xs = [0.1, -0.2, 0.3];
    const back = decodeHalf(encodeHalf(xs, 'f16'), 'f16');
    xs.forEach((x, i) => expect(back[i]).toBeCloseTo(x, 3));
  });
});
