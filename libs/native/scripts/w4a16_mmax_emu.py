# Emulation of ops/w4a16_gemm.cu w4a16_gemv_x_kernel (MmaX) written without a device: the same index math in numpy
# (mma.m16n8k16 fragments, tile pairing, gv_stage_x order, ring slots, shuffles, split reduction) vs float64.
# Keep in step with the kernel if either changes.   python3 w4a16_mmax_emu.py
# against a float64 reference of sum_k x * (q - z) * s. Values, not f16 bits: the dequantization itself is MmaQz's.
import numpy as np, itertools, sys
OFF = [0, 8, 16, 24, 1, 9, 17, 25]
W = 8  # kGvWarps

def make(n, k, group, rng):
    kp = (k + 127) // 128 * 128
    KB = kp // 128
    q = rng.integers(0, 16, size=(n, kp)); q[:, k:] = 0
    G = kp // group
    z = rng.integers(0, 16, size=(n, G)).astype(np.float64)
    s = rng.uniform(0.001, 0.01, size=(n, G))
    # pack: qw[(tile*KB+kb)*32+lane][j]
    qw = np.zeros(((n // 8) * KB * 32, 4), dtype=np.uint64)
    for tile in range(n // 8):
        for kb in range(KB):
            for lane in range(32):
                g, t = lane >> 2, lane & 3
                row = tile * 8 + g
                for j in range(4):
                    word = 0
                    for p in range(8):
                        kk = 128 * kb + 32 * j + OFF[p] + 2 * t
                        word |= int(q[row, kk]) << (4 * p)
                    qw[(tile * KB + kb) * 32 + lane, j] = word
    sz = np.zeros((G, n, 2))
    sz[:, :, 0] = s.T; sz[:, :, 1] = z.T
    return q, z, s, qw, sz, kp, KB

def nib(word, p): return (int(word) >> (4 * p)) & 15

def mma(c, a, b0, b1):
    # a[lane] = 4 regs, each a pair of values; b0/b1[lane] = pairs. m16n8k16 row.col, f32 acc (float64 here)
    A = np.zeros((16, 16)); B = np.zeros((16, 8))
    for lane in range(32):
        g, t = lane >> 2, lane & 3
        A[g, 2*t:2*t+2] = a[lane][0]; A[g+8, 2*t:2*t+2] = a[lane][1]
        A[g, 2*t+8:2*t+10] = a[lane][2]; A[g+8, 2*t+8:2*t+10] = a[lane][3]
        B[2*t:2*t+2, g] = b0[lane]; B[2*t+8:2*t+10, g] = b1[lane]
    D = A @ B
    for lane in range(32):
        g, t = lane >> 2, lane & 3
        c[lane][0] += D[g, 2*t]; c[lane][1] += D[g, 2*t+1]; c[lane][2] += D[g+8, 2*t]; c[lane][3] += D[g+8, 2*t+1]

def run(M, n, k, group, T, S_forced=None, rng=None):
    q, z, s, qw, sz, kp, KB = make(n, k, group, rng)
    x = rng.standard_normal((M, k))
    GPB = 128 // group; WPG = 4 // GPB; P = T // 2
    D = {8: 2, 4: 3, 2: 5}[T]
    tiles = n // 8
    units = (tiles + T - 1) // T
    S = S_forced or 1
    TB = W // S
    grid = (units + TB - 1) // TB
    RW = KB * 64 + 16
    y = np.full((M, n), np.nan)
    for bx in range(grid):
        # x staging: pairs of row r: xs[r*RW + kb*64 + (j*4+t)*4 + i] = pair (k 128kb + 32j + 8i + 2t)
        xs = np.zeros((M * RW, 2))
        chunks = KB * 16
        for r in range(M):
            for qq in range(chunks):
                col = qq * 8
                v = np.zeros(8)
                if col < k: v = x[r, col:col+8]
                base = r * RW + (qq >> 4) * 64 + ((qq >> 2) & 3) * 16 + (qq & 3)
                for e in range(4): xs[base + 4 * e] = v[2*e:2*e+2]
        red = np.zeros(W * T * M * 8)
        for warp in range(W):
            tl, sl = warp // S, warp % S
            per = (KB + S - 1) // S
            tile0 = (bx * TB + tl) * T
            nvalid = min(T, tiles - tile0)
            kb0 = min(KB, sl * per); kb1 = min(KB, kb0 + per) if nvalid > 0 else kb0
            tbase = max(0, min(tile0, tiles - 1))
            wv = [[None]*T for _ in range(D)]; sv = [[None]*T for _ in range(D)]
            def issue(d, kk):
                if kk < kb1:
                    for i in range(T):
                        if i < nvalid:
                            wv[d][i] = [qw[((tbase + i) * KB + kk) * 32 + lane] for lane in range(32)]
                            sv[d][i] = [sz[kk * GPB + (l & 3) * GPB // 4, tbase * 8 + i * 8 + (l >> 2)] for l in range(32)]
                        else:
                            wv[d][i] = [np.zeros(4, dtype=np.uint64)] * 32; sv[d][i] = [np.zeros(2)] * 32
            tot = [[[0.0]*4 for _ in range(32)] for _ in range(P)]
            def compute(d, kk):
                xv = []
                for lane in range(32):
                    g, t = lane >> 2, lane & 3
                    if g < M: xv.append([xs[g * RW + kk * 64 + (j * 4 + t) * 4 + e] for j in range(4) for e in range(4)])
                    else: xv.append([np.zeros(2)] * 16)
                for p in range(P):
                    for gj in range(GPB):
                        zz = [[0, 0] for _ in range(32)]; sc = [[0, 0] for _ in range(32)]
                        for h in range(2):
                            for lane in range(32):
                                src = (lane & ~3) | (gj * WPG) if GPB > 1 else lane
                                pr = sv[d][2*p+h][src]
                                zz[lane][h] = pr[1]; sc[lane][h] = pr[0]
                        ga = [[0.0]*4 for _ in range(32)]
                        for w in range(WPG):
                            j = gj * WPG + w
                            def deq(i_t, lane):
                                word = wv[d][i_t][lane][j]
                                return [np.array([nib(word, i) - zz[lane][i_t - 2*p], nib(word, i + 4) - zz[lane][i_t - 2*p]]) for i in range(4)]
                            a0 = []; a1 = []
                            for lane in range(32):
                                ba = deq(2*p, lane); bb = deq(2*p+1, lane)
                                a0.append([ba[0], bb[0], ba[1], bb[1]]); a1.append([ba[2], bb[2], ba[3], bb[3]])
                            mma(ga, a0, [xv[l][j*4+0] for l in range(32)], [xv[l][j*4+1] for l in range(32)])
                            mma(ga, a1, [xv[l][j*4+2] for l in range(32)], [xv[l][j*4+3] for l in range(32)])
                        for lane in range(32):
                            tot[p][lane][0] += sc[lane][0] * ga[lane][0]
                            tot[p][lane][1] += sc[lane][0] * ga[lane][1]
                            tot[p][lane][2] += sc[lane][1] * ga[lane][2]
                            tot[p][lane][3] += sc[lane][1] * ga[lane][3]
            for d in range(D - 1): issue(d, kb0 + d)
            kb = kb0
            while kb < kb1:
                for d in range(D):
                    kk = kb + d
                    if kk >= kb1: break
                    issue((d + D - 1) % D, kk + D - 1)
                    compute(d, kk)
                kb += D
            for lane in range(32):
                g, t = lane >> 2, lane & 3
                for p in range(P):
                    for h in range(2):
                        r = 2 * t + h
                        if r < M:
                            red[warp*T*M*8 + ((2*p)*M + r)*8 + g] = tot[p][lane][h]
                            red[warp*T*M*8 + ((2*p+1)*M + r)*8 + g] = tot[p][lane][2+h]
        for e in range(TB * T * M * 8):
            u = e // (T*M*8); rem = e - u*(T*M*8); i = rem // (M*8); r = (rem // 8) % M; f = rem % 8
            tile = (bx * TB + u) * T + i
            if tile >= tiles: continue
            v = sum(red[(u*S + s2)*T*M*8 + rem] for s2 in range(S))
            assert np.isnan(y[r, tile*8+f]); y[r, tile*8 + f] = v
    # reference
    G = kp // group
    wq = (q[:, :k] - np.repeat(z, group, axis=1)[:, :k]) * np.repeat(s, group, axis=1)[:, :k]
    ref = x @ wq.T
    err = np.abs(y - ref).max() / np.abs(ref).max()
    return err

rng = np.random.default_rng(1)
cases = [(1, 56, 256, 128, 4, 1), (3, 56, 384, 128, 4, 8), (8, 24, 256, 128, 2, 2), (2, 136, 128, 128, 8, 1),
         (5, 40, 256, 64, 4, 2), (7, 24, 96, 32, 4, 4), (1, 8, 384, 32, 4, 8), (4, 72, 256, 128, 8, 4), (6, 64, 640, 64, 4, 1)]
for M, n, k, group, T, S in cases:
    e = run(M, n, k, group, T, S, rng)
    print(f"M={M} n={n} k={k} g={group} T={T} S={S}: rel err {e:.2e} {'OK' if e < 1e-9 else 'BAD'}")
