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

  it('decodeHalf gives the per-element conversion for every one of the 65536 bit patterns (f16 table, bf16 bits)', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const bytes = new Uint8Array(all.buffer);
    for (const [dtype, conv] of [['f16', f16BitsToF32], ['bf16', bf16BitsToF32]] as const) {
      const got = decodeHalf(bytes, dtype);
      let bad = 0;
      for (let h = 0; h < 65536; h++) if (!Object.is(got[h], Math.fround(conv(h))) && !(Number.isNaN(got[h]) && Number.isNaN(conv(h)))) bad++;
      expect({ dtype, bad }).toEqual({ dtype, bad: 0 });
    }
  });
});
