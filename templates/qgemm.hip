// Fused quantized GEMM: y[M, N] = x[M, K] · W[N, K]ᵀ (+ bias), x and y f16, W in any format of
// quant_dequant.h (dequant8 contract). Two kernels:
//  * the shared-memory tile (every path): per K-tile the block stages x into shared memory as f16
//    and dequantizes its BN rows of W into shared memory as f16 (8 elements per dequant8 call),
//    then multiplies on matrix cores with f32 accumulation:
//      QG_MMA   NVIDIA mma.sync.m16n8k16 (f16 → f32)            (#if RF_MMA_SYNC)
//      QG_MFMA  CDNA  v_mfma_f32_16x16x16f16, wave64             (#if RF_MFMA)
//      QG_WMMA  RDNA3/4 v_wmma_f32_16x16x16_f16, wave32          (#if RF_WMMA)
//      QG_SIMT  portable: f32 FMAs from shared memory (every target)
//    Tiles: BM × BN per block and BK along K per stage; WARPS waves arranged WM × WN × WK (WM = 2
//    when BM ≥ 64; WN as many as the tile's columns allow; the rest, WK, split each K tile and are
//    summed through shared memory at the end, so small-M tiles still keep every wave busy).
//  * the register tile (QG_MMA with BK = 256, the formats of quant_w8.h; qgemm_rw below): W is
//    decoded straight into mma A fragments, once per 8 NB tokens.

enum { QG_MMA = 0, QG_MFMA = 1, QG_WMMA = 2, QG_SIMT = 3 };
#if defined(RF_MMA_SYNC)
constexpr bool QG_HAVE_MMA = true;
#else
constexpr bool QG_HAVE_MMA = false;
#endif
#if defined(RF_MFMA)
constexpr bool QG_HAVE_MFMA = true;
#else
constexpr bool QG_HAVE_MFMA = false;
#endif
#if defined(RF_WMMA)
constexpr bool QG_HAVE_WMMA = true;
#else
constexpr bool QG_HAVE_WMMA = false;
#endif

struct alignas(16) qg_h8 { rf_half v[8]; };

// Stage x[m0.., k0..k0+BK) into As (rows of LD halves), 8 halves per access; out of range → 0.
template <int BM, int BK, int LD, int NT>
RF_DEVICE void qg_load_x(int M, int K, const rf_half* RF_RESTRICT x, int m0, int k0, rf_half* As) {
    constexpr int TOTAL = BM * BK / 8, ITERS = (TOTAL + NT - 1) / NT;
#pragma unroll
    for (int it = 0; it < ITERS; ++it) {
        const int c = threadIdx.x + it * NT;
        if (TOTAL % NT != 0 && c >= TOTAL) break;
        const int r = c / (BK / 8), kc = (c % (BK / 8)) * 8;
        qg_h8 p;
        if (m0 + r < M && k0 + kc < K) {
            p = *reinterpret_cast<const qg_h8*>(x + (long long)(m0 + r) * K + k0 + kc);
        } else {
#pragma unroll
            for (int j = 0; j < 8; ++j) p.v[j] = __float2half_rn(0.0f);
        }
        *reinterpret_cast<qg_h8*>(As + r * LD + kc) = p;
    }
}

// Dequantize W[n0.., k0..k0+BK) into Bs (rows of LD halves), one dequant8 per 8 elements; the
// unrolled loop lets every call's loads be in flight together.
template <typename FMT, int BN, int BK, int LD, int NT>
RF_DEVICE void qg_load_w(int N, int K, long long row_bytes, const uint8_t* RF_RESTRICT w, int n0, int k0, rf_half* Bs) {
    constexpr int TOTAL = BN * BK / 8, ITERS = (TOTAL + NT - 1) / NT;
#pragma unroll
    for (int it = 0; it < ITERS; ++it) {
        const int c = threadIdx.x + it * NT;
        if (TOTAL % NT != 0 && c >= TOTAL) break;
        const int n = c / (BK / 8), g = (c % (BK / 8)) * 8;
        const int e = k0 + g;
        float v[8];
        if (n0 + n < N && e < K) {
            FMT::dequant8(w + (long long)(n0 + n) * row_bytes + (long long)(e / FMT::QK) * FMT::BYTES, e % FMT::QK, v);
        } else {
#pragma unroll
            for (int j = 0; j < 8; ++j) v[j] = 0.0f;
        }
        qg_h8 p;
#pragma unroll
        for (int j = 0; j < 8; ++j) p.v[j] = __float2half_rn(v[j]);
        *reinterpret_cast<qg_h8*>(Bs + n * LD + g) = p;
    }
}

// Sum the partial accumulators of the WK waves that split K (E floats per lane) into wave wk == 0's.
// Called by every thread after the main loop's last barrier; `red` is shared scratch.
template <int WK, int E, int WMN>
RF_DEVICE void qg_reduce_k(float* acc, int wk, int wmn, int lane, float* red) {
    if constexpr (WK > 1) {
        if (wk > 0) {
#pragma unroll
            for (int e = 0; e < E; ++e) red[(((wk - 1) * WMN + wmn) * E + e) * RF_WAVE + lane] = acc[e];
        }
        __syncthreads();
        if (wk == 0) {
#pragma unroll
            for (int q = 1; q < WK; ++q)
#pragma unroll
                for (int e = 0; e < E; ++e) acc[e] += red[(((q - 1) * WMN + wmn) * E + e) * RF_WAVE + lane];
        }
    }
}

// The register tiles' K chunk of 256 columns, on every vendor: blocks per chunk, their bytes, and the
// 16-byte vectors one row's chunk spans at any alignment (gemv's rule, gemv::mma_ring_vectors in Rust).
template <typename F>
struct qg_chunk {
    static constexpr int CB = F::QK >= 256 ? 1 : 256 / F::QK;
    static constexpr int CBYTES = CB * F::BYTES;
    static constexpr int RV = (CBYTES + 34) / 16;
};

RF_DEVICE void qg_store(int M, int N, int r, int c, float v, const rf_half* RF_RESTRICT bias, rf_half* RF_RESTRICT y) {
    if (r < M && c < N) {
        if (bias) v += __half2float(bias[c]);
        y[(long long)r * N + c] = __float2half_rn(v);
    }
}

#if defined(RF_MMA_SYNC)
// ---------------- NVIDIA register tile (QG_MMA tiles with BK = 256) ----------------
// For the formats of quant_w8.h. The block owns BN = 16 R weight rows and BM = 8 NB tokens; its
// WARPS = R S warps are R row groups of 16 rows times S groups that split K. K goes in chunks of 256
// columns: per chunk the block copies x[m0 .., chunk] (f16 rows of 256 + 16 halves: 544-byte rows
// make the fragment loads conflict-free) and the bytes of its rows' blocks (the 16-byte vectors
// covering each row, at any alignment, as gemv's tile) into a shared stage with cp.async, the next
// chunk's copies in flight while this one is multiplied. Warp (r, s) takes units s, s + S, ... of
// the chunk for rows 16 r .. 16 r + 15: lane (g, t) decodes word t of each segment of rows g and
// g + 8 once (unit<1>), builds the A fragment (the k-slot order of quant_w8.h's fragment helpers) and
// multiplies it with the NB B fragments of x, so the dequantization is paid once per 8 NB tokens
// and no weight is ever written out. The S partial sums meet in shared memory at the end. Weights
// are a * code + b rounded to f16: formats with a minimum in f32 then one rounding (rf_mm_pairs_f),
// the others by one f16 fused multiply-add on the exact codes (rf_mm_pairs_h).
template <int NB, int R, typename F>
struct qg_rw_geom {
    static constexpr int CB = qg_chunk<F>::CB;
    static constexpr int RV = qg_chunk<F>::RV;
    static constexpr int XLD = 256 + 16;                       // halves per staged x row
    static constexpr int XBYTES = 2 * 8 * NB * XLD * 2;        // both x stages
    static constexpr int BYTES = XBYTES + 2 * 16 * R * RV * 16;
};

template <typename F, int NB, int R, int S>
RF_DEVICE void qgemm_rw(int M, int N, int K, const rf_half* RF_RESTRICT x, const uint8_t* RF_RESTRICT w,
                        const rf_half* RF_RESTRICT bias, rf_half* RF_RESTRICT y) {
    using W = rf_w8<F>;
    using G = qg_rw_geom<NB, R, F>;
    static_assert(RF_WAVE == 32, "mma.sync needs 32-lane warps");
    constexpr int NS = W::NS, CB = G::CB, CU = CB * W::UPB, CBYTES = CB * F::BYTES, RV = G::RV, XLD = G::XLD;
    constexpr int NT = 32 * R * S;
    constexpr int XV = 8 * NB * 32;  // 16-byte vectors of one x stage
    static_assert((S - 1) * R * NB * 4 * 32 * 4 <= G::XBYTES, "K-group partial sums fit in the x stages");
    extern __shared__ uint4 qg_dyn[];
    rf_half* xs = (rf_half*)qg_dyn;                                                // [2][8 NB][XLD]
    uint4 (*ws)[16 * R * RV] = (uint4 (*)[16 * R * RV])((uint8_t*)qg_dyn + G::XBYTES);  // [2][16 R rows][RV]
    const int lane = threadIdx.x % 32, wid = threadIdx.x / 32;
    const int wr = wid % R, wk = wid / R;
    const int g = lane >> 2, t = lane & 3;
    const int brow = blockIdx.x * (16 * R), row0 = brow + 16 * wr;
    const int m0 = blockIdx.y * (8 * NB);
    const int nb = K / F::QK, nch = (nb + CB - 1) / CB;
    const long long row_bytes = (long long)nb * F::BYTES;
    const uint8_t* end = w + (long long)N * row_bytes;
    // Per-thread copy plan, computed once: thread (wid, lane) copies x vector `lane` of rows wid,
    // wid + WARPS, ... of the stage, and W vectors threadIdx.x, threadIdx.x + NT, ... (row i / RV).
    constexpr int XR = 8 * NB / (R * S);            // x rows per thread
    constexpr int WV = (16 * R * RV + NT - 1) / NT;  // W vectors per thread (the last maybe partial)
    static_assert((8 * NB) % (R * S) == 0, "x rows split evenly over the warps");
    const rf_half* xsrc = x + (long long)(m0 + wid) * K + 8 * lane;
    uint32_t xrow_ok = 0;
#pragma unroll
    for (int k = 0; k < XR; ++k) xrow_ok |= (uint32_t)(m0 + wid + k * R * S < M) << k;
    rf_half* xdst = xs + wid * XLD + 8 * lane;
    const uint8_t* wbase[WV];
#pragma unroll
    for (int k = 0; k < WV; ++k) {
        const int i = threadIdx.x + k * NT, r = min(i / RV, 16 * R - 1);
        wbase[k] = w + (long long)min(brow + r, N - 1) * row_bytes + 16 * (i - (i / RV) * RV);
    }
    auto issue = [&](int c, int st) {
        const bool col_ok = 256 * c + 8 * lane < K;  // zeros past K (and past M, per row)
#pragma unroll
        for (int k = 0; k < XR; ++k) {
            const bool ok = col_ok && ((xrow_ok >> k) & 1u);
            rf_cp_async16(xdst + (st * 8 * NB + k * R * S) * XLD, ok ? xsrc + (long long)k * R * S * K + 256 * c : x, ok ? 16 : 0);
        }
#pragma unroll
        for (int k = 0; k < WV; ++k) {  // W: the block's rows (the last row repeated past N)
            const int i = threadIdx.x + k * NT;
            if ((16 * R * RV) % NT != 0 && i >= 16 * R * RV) break;
            // wbase = the row's start + 16 v; the chunk's bytes from the 16-byte boundary at or below its start
            const uint8_t* row_v = wbase[k] + (long long)c * CBYTES;
            const uint8_t* src = (const uint8_t*)((unsigned long long)(row_v - 16 * (i % RV)) & ~15ull) + 16 * (i % RV);
            const long long left = end - src;
            if (left >= 16) {
                rf_cp_async16(&ws[st][i], src, 16);
            } else {  // the matrix ends inside this vector (or before it): bytes one by one, zeros after
                uint8_t* d = (uint8_t*)&ws[st][i];
                for (int b = 0; b < 16; ++b) d[b] = b < left ? src[b] : (uint8_t)0;
            }
        }
        rf_cp_async_commit();
    };
    float acc[NB][4];
#pragma unroll
    for (int j = 0; j < NB; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.0f;
    const int ra = min(row0 + g, N - 1), rb = min(row0 + g + 8, N - 1);
    if (nch > 0) issue(0, 0);
    for (int c = 0; c < nch; ++c) {
        const int st = c & 1;
        if (c + 1 < nch) issue(c + 1, st ^ 1);
        else rf_cp_async_commit();  // an empty group keeps the count of groups in flight uniform
        rf_cp_async_wait<1>();
        __syncthreads();  // the stage has landed, every thread's copies
        const int cb = min(CB, nb - c * CB);
        const uint8_t* sa = (const uint8_t*)&ws[st][(16 * wr + g) * RV] + (((long long)ra * row_bytes + (long long)c * CBYTES) & 15);
        const uint8_t* sb = (const uint8_t*)&ws[st][(16 * wr + g + 8) * RV] + (((long long)rb * row_bytes + (long long)c * CBYTES) & 15);
        const rf_half* xg = xs + (st * 8 * NB + g) * XLD + 4 * t;
#pragma unroll
        for (int qq = 0; qq < (CU + S - 1) / S; ++qq) {
            const int q = qq * S + wk;
            const int bi = q / W::UPB, u = q % W::UPB;
            if ((CU % S == 0 || q < CU) && bi < cb) {
                uint32_t ca[NS][1], cbw[NS][1];
                float aa[NS], ba[NS], ab[NS], bb[NS];
                W::template unit<1>(sa + bi * F::BYTES, u, t, ca, aa, ba, nullptr);
                W::template unit<1>(sb + bi * F::BYTES, u, t, cbw, ab, bb, nullptr);
#pragma unroll
                for (int s = 0; s < NS; ++s) {
                    uint32_t a[4];
                    if constexpr (rf_mm_min<F>::V) {
                        rf_mm_pairs_f(ca[s][0], aa[s], ba[s], a[0], a[2]);
                        rf_mm_pairs_f(cbw[s][0], ab[s], bb[s], a[1], a[3]);
                    } else {
                        rf_mm_pairs_h(ca[s][0], __float2half2_rn(aa[s]), __float2half2_rn(ba[s]), rf_mm_uns<F>::V, a[0], a[2]);
                        rf_mm_pairs_h(cbw[s][0], __float2half2_rn(ab[s]), __float2half2_rn(bb[s]), rf_mm_uns<F>::V, a[1], a[3]);
                    }
                    const rf_half* xe = xg + bi * F::QK + W::elem(u, s);
#pragma unroll
                    for (int j = 0; j < NB; ++j) {
                        const uint2 v = *(const uint2*)(xe + j * 8 * XLD);
                        rf_mma16816(acc[j], a, __byte_perm(v.x, v.y, 0x5410), __byte_perm(v.x, v.y, 0x7632), (rf_half*)nullptr);
                    }
                }
            }
        }
        __syncthreads();  // every warp is done with stage st before chunk c + 2 refills it
    }
    rf_cp_async_wait<0>();
    // the K groups' partial sums, through the (now idle) x stages
    qg_reduce_k<S, NB * 4, R>(&acc[0][0], wk, wr, lane, (float*)qg_dyn);
    if (wk > 0) return;
#pragma unroll
    for (int j = 0; j < NB; ++j) {
        const int m = m0 + 8 * j + 2 * t, r = row0 + g;
        qg_store(M, N, m, r, acc[j][0], bias, y);
        qg_store(M, N, m + 1, r, acc[j][1], bias, y);
        qg_store(M, N, m, r + 8, acc[j][2], bias, y);
        qg_store(M, N, m + 1, r + 8, acc[j][3], bias, y);
    }
}
#endif

#if defined(RF_MFMA) || defined(RF_WMMA)
// ---------------- AMD register tile (QG_MFMA / QG_WMMA tiles with BK = 256) ----------------
// The NVIDIA register tile's scheme on the AMD matrix instructions (one 16 x 16 x 16 f16 product,
// f32 accumulation): the block owns BN = 16 R weight rows and BM = 16 NT tokens; its waves are R row
// groups times S groups that split K; K goes in chunks of 256 columns through two LDS stages, the
// next chunk loaded into registers while this one is multiplied and stored after it (AMD has no
// cp.async: global -> register -> LDS double buffering, one barrier per chunk). A lane holds KPL
// consecutive k of one weight row (row lane % 16, from k = KOFF(lane)): it decodes those codes of
// its row once per segment (unit<KPL / 4>), forms a * code + b in f32, rounds once to f16 and
// multiplies the A fragment with the NT B fragments (KPL consecutive x values of token lane % 16).
//   MFMA (CDNA, wave64)   v_mfma_f32_16x16x16f16: KPL 4, k from 4 (lane / 16), D rows 4 (lane / 16) + i
//   WMMA gfx11 (wave32)   KPL 16 (lanes 16-31 repeat 0-15), D rows 2 i + lane / 16
//   WMMA gfx12 (wave32)   KPL 8, k from 8 (lane / 16), D rows 8 (lane / 16) + i
#if defined(RF_MFMA)
#define QG_KPL 4
#define QG_DPL 4
#elif RF_GFX >= 0x1200
#define QG_KPL 8
#define QG_DPL 8
#else
#define QG_KPL 16
#define QG_DPL 8
#endif
typedef rf_vec<rf_f16_elem, QG_KPL> qg_ah;
typedef rf_vec<float, QG_DPL> qg_af;
RF_DEVICE int qg_amd_drow(int i, int lane) {
#if defined(RF_MFMA)
    return 4 * (lane / 16) + i;
#elif RF_GFX >= 0x1200
    return 8 * (lane / 16) + i;
#else
    return 2 * i + lane / 16;
#endif
}
RF_DEVICE qg_af qg_amd_mma(qg_ah a, qg_ah b, qg_af c) {
#if defined(RF_MFMA)
    return __builtin_amdgcn_mfma_f32_16x16x16f16(a, b, c, 0, 0, 0);
#elif RF_GFX >= 0x1200
    return __builtin_amdgcn_wmma_f32_16x16x16_f16_w32_gfx12(a, b, c);
#else
    return __builtin_amdgcn_wmma_f32_16x16x16_f16_w32(a, b, c);
#endif
}

template <typename F, int NT, int R, int S>
RF_DEVICE void qgemm_rw_amd(int M, int N, int K, const rf_half* RF_RESTRICT x, const uint8_t* RF_RESTRICT w,
                            const rf_half* RF_RESTRICT bias, rf_half* RF_RESTRICT y) {
    using W = rf_w8<F>;
    constexpr int NS = W::NS;
    constexpr int CB = qg_chunk<F>::CB, CU = CB * W::UPB, CBYTES = qg_chunk<F>::CBYTES;
    constexpr int RV = qg_chunk<F>::RV;  // LDS vectors per row
    constexpr int XLD = 256 + 8;             // halves per LDS x row
    constexpr int BM = 16 * NT, NTH = RF_WAVE * R * S;
    constexpr int XV = BM * 32, XPT = (XV + NTH - 1) / NTH;          // x vectors per stage, per thread
    constexpr int WVN = 16 * R * RV, WPT = (WVN + NTH - 1) / NTH;   // W vectors per stage, per thread
    constexpr int XBYTES = 2 * BM * XLD * 2;
    static_assert((S - 1) * R * NT * QG_DPL * RF_WAVE * 4 <= XBYTES, "K-group partial sums fit in the x stages");
    extern __shared__ uint4 qg_dyn[];
    rf_half* xs = (rf_half*)qg_dyn;                          // [2][BM][XLD]
    uint4* ws = (uint4*)((uint8_t*)qg_dyn + XBYTES);         // [2][16 R rows][RV]
    const int lane = threadIdx.x % RF_WAVE, wid = threadIdx.x / RF_WAVE;
    const int wr = wid % R, wk = wid / R;
    const int lr = lane % 16, koff = (QG_KPL * (lane / 16)) % 16;
    const int brow = blockIdx.x * (16 * R), row0 = brow + 16 * wr;
    const int m0 = blockIdx.y * BM;
    const int nb = K / F::QK, nch = (nb + CB - 1) / CB;
    const long long row_bytes = (long long)nb * F::BYTES;
    const uint8_t* end = w + (long long)N * row_bytes;
    uint4 xr[XPT], wv[WPT];
    auto load = [&](int c) {  // chunk c into registers: x (zeros past M and K), the block's W rows
#pragma unroll
        for (int k = 0; k < XPT; ++k) {
            const int i = threadIdx.x + k * NTH, r = i >> 5, col = 256 * c + 8 * (i & 31);
            xr[k] = make_uint4(0u, 0u, 0u, 0u);
            if ((XV % NTH == 0 || i < XV) && m0 + r < M && col < K) xr[k] = *(const uint4*)(x + (long long)(m0 + r) * K + col);
        }
#pragma unroll
        for (int k = 0; k < WPT; ++k) {
            const int i = threadIdx.x + k * NTH;
            wv[k] = make_uint4(0u, 0u, 0u, 0u);
            if (WVN % NTH == 0 || i < WVN) {
                const int r = i / RV, v = i - r * RV;
                const uint8_t* base = w + (long long)min(brow + r, N - 1) * row_bytes + (long long)c * CBYTES;
                const uint8_t* src = (const uint8_t*)((unsigned long long)base & ~15ull) + 16 * v;
                if (src + 16 <= end) {
                    wv[k] = *(const uint4*)src;
                } else {  // the matrix ends inside this vector (or before it): bytes one by one, zeros after
                    uint32_t b[4] = {0u, 0u, 0u, 0u};
                    for (int j = 0; j < 16; ++j)
                        if (src + j < end) b[j / 4] |= (uint32_t)src[j] << (8 * (j % 4));
                    wv[k] = make_uint4(b[0], b[1], b[2], b[3]);
                }
            }
        }
    };
    auto store = [&](int st) {
#pragma unroll
        for (int k = 0; k < XPT; ++k) {
            const int i = threadIdx.x + k * NTH;
            if (XV % NTH == 0 || i < XV) *(uint4*)(xs + (st * BM + (i >> 5)) * XLD + 8 * (i & 31)) = xr[k];
        }
#pragma unroll
        for (int k = 0; k < WPT; ++k) {
            const int i = threadIdx.x + k * NTH;
            if (WVN % NTH == 0 || i < WVN) ws[st * WVN + i] = wv[k];
        }
    };
    qg_af acc[NT];
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
        for (int i = 0; i < QG_DPL; ++i) acc[j][i] = 0.0f;
    const int rl = min(row0 + lr, N - 1);
    if (nch > 0) {
        load(0);
        store(0);
    }
    __syncthreads();
    for (int c = 0; c < nch; ++c) {
        const int st = c & 1;
        const bool more = c + 1 < nch;
        if (more) load(c + 1);
        const int cb = min(CB, nb - c * CB);
        const uint8_t* sa = (const uint8_t*)&ws[st * WVN + (16 * wr + lr) * RV] + (((long long)rl * row_bytes + (long long)c * CBYTES) & 15);
        const rf_half* xl = xs + (st * BM + lr) * XLD + koff;
#pragma unroll
        for (int qq = 0; qq < (CU + S - 1) / S; ++qq) {
            const int q = qq * S + wk;
            const int bi = q / W::UPB, u = q % W::UPB;
            if ((CU % S == 0 || q < CU) && bi < cb) {
                uint32_t cw[NS][QG_KPL / 4];
                float a[NS], b[NS];
                W::template unit<QG_KPL / 4>(sa + bi * F::BYTES, u, koff / 4, cw, a, b, nullptr);
#pragma unroll
                for (int s = 0; s < NS; ++s) {
                    rf_half hv[QG_KPL];
#pragma unroll
                    for (int e = 0; e < QG_KPL; ++e)
                        hv[e] = __float2half_rn(fmaf(a[s], (float)(int)(signed char)(cw[s][e / 4] >> (8 * (e % 4))), b[s]));
                    qg_ah av;
                    __builtin_memcpy(&av, hv, sizeof(av));
                    const rf_half* xe = xl + bi * F::QK + W::elem(u, s);
#pragma unroll
                    for (int j = 0; j < NT; ++j) {
                        qg_ah bv;
                        __builtin_memcpy(&bv, xe + j * 16 * XLD, sizeof(bv));
                        acc[j] = qg_amd_mma(av, bv, acc[j]);
                    }
                }
            }
        }
        if (more) store(st ^ 1);  // its readers (chunk c - 1) passed the previous barrier
        __syncthreads();
    }
    if constexpr (S > 1) {  // the K groups' partial sums, through the (now idle) x stages
        float* red = (float*)qg_dyn;
        if (wk > 0) {
#pragma unroll
            for (int j = 0; j < NT; ++j)
#pragma unroll
                for (int e = 0; e < QG_DPL; ++e) red[((((wk - 1) * R + wr) * NT + j) * QG_DPL + e) * RF_WAVE + lane] = acc[j][e];
        }
        __syncthreads();
        if (wk > 0) return;
#pragma unroll
        for (int k = 1; k < S; ++k)
#pragma unroll
            for (int j = 0; j < NT; ++j)
#pragma unroll
                for (int e = 0; e < QG_DPL; ++e) acc[j][e] += red[((((k - 1) * R + wr) * NT + j) * QG_DPL + e) * RF_WAVE + lane];
    }
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
        for (int e = 0; e < QG_DPL; ++e) qg_store(M, N, m0 + 16 * j + lr, row0 + qg_amd_drow(e, lane), acc[j][e], bias, y);
}
#endif

template <typename FMT, int PATH, int BM, int BN, int WARPS, int BK>
RF_DEVICE void qgemm(int M, int N, int K, const rf_half* RF_RESTRICT x, const uint8_t* RF_RESTRICT w,
                     const rf_half* RF_RESTRICT bias, rf_half* RF_RESTRICT y) {
    constexpr int NT = WARPS * RF_WAVE;
    constexpr int LD = BK + 8;  // padded row (halves): 16-byte aligned rows, conflict-free fragment loads
    constexpr int MN_TILE = PATH == QG_MMA ? 8 : 16;  // columns of one matrix-core tile
    constexpr int WM = BM >= 64 ? 2 : 1;
    constexpr int WN = (WARPS / WM) < (BN / MN_TILE) ? (WARPS / WM) : (BN / MN_TILE);
    constexpr int WK = PATH == QG_SIMT ? 1 : WARPS / (WM * WN);
    constexpr int WTM = BM / WM, WTN = BN / WN;  // warp tile
    constexpr int KS = BK / WK;                  // K slice of one wave per stage
    static_assert(PATH == QG_SIMT || (WM * WN * WK == WARPS && BM % WM == 0 && BN % WN == 0 && KS % 16 == 0),
                  "tile does not split over the waves");
    static_assert((PATH != QG_MMA || QG_HAVE_MMA) && (PATH != QG_MFMA || QG_HAVE_MFMA) && (PATH != QG_WMMA || QG_HAVE_WMMA),
                  "this matrix-core path is not available on the target");
#if defined(RF_MMA_SYNC)
    if constexpr (PATH == QG_MMA && BK == 256) {
        // the register tile (BM = 8 NB tokens, BN = 16 rows per warp); formats without an integer
        // decoder take the shared-memory tile of the same block shape, 64 columns per stage
        if constexpr (rf_w8<FMT>::OK) {
            static_assert(BN % 16 == 0 && WARPS % (BN / 16) == 0 && BM % 8 == 0,
                          "register tile: BN = 16 rows x R, WARPS = R x S, BM a multiple of 8");
            qgemm_rw<FMT, BM / 8, BN / 16, WARPS / (BN / 16)>(M, N, K, x, w, bias, y);
        } else {
            qgemm<FMT, QG_MMA, BM, BN, WARPS, 64>(M, N, K, x, w, bias, y);
        }
        return;
    } else
#endif
#if defined(RF_MFMA) || defined(RF_WMMA)
    if constexpr ((PATH == QG_MFMA || PATH == QG_WMMA) && BK == 256) {
        // the AMD register tile (BM = 16 NT tokens, BN = 16 rows x R, WARPS = R x S); formats without
        // an integer decoder take the shared-memory tile of the same block shape, 64 columns per stage
        if constexpr (rf_w8<FMT>::OK) {
            static_assert(BN % 16 == 0 && WARPS % (BN / 16) == 0 && BM % 16 == 0,
                          "AMD register tile: BN = 16 rows x R, WARPS = R x S, BM a multiple of 16");
            qgemm_rw_amd<FMT, BM / 16, BN / 16, WARPS / (BN / 16)>(M, N, K, x, w, bias, y);
        } else {
            qgemm<FMT, PATH, BM, BN, WARPS, 64>(M, N, K, x, w, bias, y);
        }
        return;
    } else
#endif
    {
    __shared__ __attribute__((aligned(16))) rf_half As[BM * LD];
    __shared__ __attribute__((aligned(16))) rf_half Bs[BN * LD];
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    const long long row_bytes = (long long)(K / FMT::QK) * FMT::BYTES;
    const int wave = threadIdx.x / RF_WAVE, lane = threadIdx.x % RF_WAVE;
    const int wmn = wave % (WM * WN), wk = wave / (WM * WN);
    const int wm0 = (wmn % WM) * WTM, wn0 = (wmn / WM) * WTN;

#if defined(RF_MMA_SYNC)
    if constexpr (PATH == QG_MMA) {
        static_assert(WTM % 16 == 0 && WTN % 8 == 0, "mma.sync warp tile must be a multiple of 16 x 8");
        constexpr int MT = WTM / 16, NTL = WTN / 8;
        float acc[MT][NTL][4];
#pragma unroll
        for (int i = 0; i < MT; ++i)
#pragma unroll
            for (int j = 0; j < NTL; ++j)
#pragma unroll
                for (int q = 0; q < 4; ++q) acc[i][j][q] = 0.0f;
        const int g = lane >> 2, t = lane & 3;
        for (int k0 = 0; k0 < K; k0 += BK) {
            qg_load_x<BM, BK, LD, NT>(M, K, x, m0, k0, As);
            qg_load_w<FMT, BN, BK, LD, NT>(N, K, row_bytes, w, n0, k0, Bs);
            __syncthreads();
#pragma unroll
            for (int kk = wk * KS; kk < wk * KS + KS; kk += 16) {
                uint32_t a[MT][4], b[NTL][2];
#pragma unroll
                for (int i = 0; i < MT; ++i) {
                    const rf_half* p = As + (wm0 + i * 16 + g) * LD + kk + 2 * t;
                    a[i][0] = *reinterpret_cast<const uint32_t*>(p);
                    a[i][1] = *reinterpret_cast<const uint32_t*>(p + 8 * LD);
                    a[i][2] = *reinterpret_cast<const uint32_t*>(p + 8);
                    a[i][3] = *reinterpret_cast<const uint32_t*>(p + 8 * LD + 8);
                }
#pragma unroll
                for (int j = 0; j < NTL; ++j) {
                    const rf_half* p = Bs + (wn0 + j * 8 + g) * LD + kk + 2 * t;
                    b[j][0] = *reinterpret_cast<const uint32_t*>(p);
                    b[j][1] = *reinterpret_cast<const uint32_t*>(p + 8);
                }
#pragma unroll
                for (int i = 0; i < MT; ++i)
#pragma unroll
                    for (int j = 0; j < NTL; ++j)
                        asm volatile(
                            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                            : "+f"(acc[i][j][0]), "+f"(acc[i][j][1]), "+f"(acc[i][j][2]), "+f"(acc[i][j][3])
                            : "r"(a[i][0]), "r"(a[i][1]), "r"(a[i][2]), "r"(a[i][3]), "r"(b[j][0]), "r"(b[j][1]));
            }
            __syncthreads();
        }
        static_assert(WK == 1 || (WK - 1) * WM * WN * MT * NTL * 4 * RF_WAVE * 4 <= BM * LD * 2, "k-split scratch exceeds As");
        qg_reduce_k<WK, MT * NTL * 4, WM * WN>(&acc[0][0][0], wk, wmn, lane, reinterpret_cast<float*>(As));
        if (wk != 0) return;
#pragma unroll
        for (int i = 0; i < MT; ++i)
#pragma unroll
            for (int j = 0; j < NTL; ++j) {
                const int r = m0 + wm0 + i * 16 + g, c = n0 + wn0 + j * 8 + 2 * t;
                qg_store(M, N, r, c, acc[i][j][0], bias, y);
                qg_store(M, N, r, c + 1, acc[i][j][1], bias, y);
                qg_store(M, N, r + 8, c, acc[i][j][2], bias, y);
                qg_store(M, N, r + 8, c + 1, acc[i][j][3], bias, y);
            }
        return;
    }
#endif

#if defined(RF_MFMA)
    if constexpr (PATH == QG_MFMA) {
        // v_mfma_f32_16x16x16f16 (wave64): lane l holds A row l%16, k 4(l/16)..+3; B column l%16, the
        // same k; D column l%16, rows 4(l/16)..+3.
        static_assert(RF_WAVE == 64, "MFMA needs wave64");
        typedef rf_vec<rf_f16_elem, 4> qg_h4;
        typedef rf_vec<float, 4> qg_f4;
        static_assert(WTM % 16 == 0 && WTN % 16 == 0, "MFMA warp tile must be a multiple of 16 x 16");
        constexpr int MT = WTM / 16, NTL = WTN / 16;
        qg_f4 acc[MT][NTL];
#pragma unroll
        for (int i = 0; i < MT; ++i)
#pragma unroll
            for (int j = 0; j < NTL; ++j) acc[i][j] = qg_f4{0.0f, 0.0f, 0.0f, 0.0f};
        const int lr = lane % 16, lk = (lane / 16) * 4;
        for (int k0 = 0; k0 < K; k0 += BK) {
            qg_load_x<BM, BK, LD, NT>(M, K, x, m0, k0, As);
            qg_load_w<FMT, BN, BK, LD, NT>(N, K, row_bytes, w, n0, k0, Bs);
            __syncthreads();
#pragma unroll
            for (int kk = wk * KS; kk < wk * KS + KS; kk += 16) {
                qg_h4 a[MT], b[NTL];
#pragma unroll
                for (int i = 0; i < MT; ++i) a[i] = *reinterpret_cast<const qg_h4*>(As + (wm0 + i * 16 + lr) * LD + kk + lk);
#pragma unroll
                for (int j = 0; j < NTL; ++j) b[j] = *reinterpret_cast<const qg_h4*>(Bs + (wn0 + j * 16 + lr) * LD + kk + lk);
#pragma unroll
                for (int i = 0; i < MT; ++i)
#pragma unroll
                    for (int j = 0; j < NTL; ++j) acc[i][j] = __builtin_amdgcn_mfma_f32_16x16x16f16(a[i], b[j], acc[i][j], 0, 0, 0);
            }
            __syncthreads();
        }
        static_assert(WK == 1 || (WK - 1) * WM * WN * MT * NTL * 4 * RF_WAVE * 4 <= BM * LD * 2, "k-split scratch exceeds As");
        qg_reduce_k<WK, MT * NTL * 4, WM * WN>(reinterpret_cast<float*>(&acc[0][0]), wk, wmn, lane, reinterpret_cast<float*>(As));
        if (wk != 0) return;
#pragma unroll
        for (int i = 0; i < MT; ++i)
#pragma unroll
            for (int j = 0; j < NTL; ++j)
#pragma unroll
                for (int q = 0; q < 4; ++q) qg_store(M, N, m0 + wm0 + i * 16 + lk + q, n0 + wn0 + j * 16 + lr, acc[i][j][q], bias, y);
        return;
    }
#endif

#if defined(RF_WMMA)
    if constexpr (PATH == QG_WMMA) {
        static_assert(RF_WAVE == 32, "WMMA needs wave32");
        typedef rf_vec<float, 8> qg_f8;
        static_assert(WTM % 16 == 0 && WTN % 16 == 0, "WMMA warp tile must be a multiple of 16 x 16");
        constexpr int MT = WTM / 16, NTL = WTN / 16;
        qg_f8 acc[MT][NTL];
#pragma unroll
        for (int i = 0; i < MT; ++i)
#pragma unroll
            for (int j = 0; j < NTL; ++j) acc[i][j] = qg_f8{0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
        const int lr = lane % 16, hi = lane / 16;
        for (int k0 = 0; k0 < K; k0 += BK) {
            qg_load_x<BM, BK, LD, NT>(M, K, x, m0, k0, As);
            qg_load_w<FMT, BN, BK, LD, NT>(N, K, row_bytes, w, n0, k0, Bs);
            __syncthreads();
#pragma unroll
            for (int kk = wk * KS; kk < wk * KS + KS; kk += 16) {
#if RF_GFX >= 0x1200
                // gfx12: lane l holds row/column l%16, k 8(l/16)..+7; D rows 8(l/16)..+7, column l%16.
                typedef rf_vec<rf_f16_elem, 8> qg_hv;
                const int ko = hi * 8;
#else
                // gfx11: lane l holds row/column l%16, all 16 k (lanes 16-31 repeat 0-15); D rows 2i + l/16.
                typedef rf_vec<rf_f16_elem, 16> qg_hv;
                const int ko = 0;
#endif
                qg_hv a[MT], b[NTL];
#pragma unroll
                for (int i = 0; i < MT; ++i) a[i] = *reinterpret_cast<const qg_hv*>(As + (wm0 + i * 16 + lr) * LD + kk + ko);
#pragma unroll
                for (int j = 0; j < NTL; ++j) b[j] = *reinterpret_cast<const qg_hv*>(Bs + (wn0 + j * 16 + lr) * LD + kk + ko);
#pragma unroll
                for (int i = 0; i < MT; ++i)
#pragma unroll
                    for (int j = 0; j < NTL; ++j) {
#if RF_GFX >= 0x1200
                        acc[i][j] = __builtin_amdgcn_wmma_f32_16x16x16_f16_w32_gfx12(a[i], b[j], acc[i][j]);
#else
                        acc[i][j] = __builtin_amdgcn_wmma_f32_16x16x16_f16_w32(a[i], b[j], acc[i][j]);
#endif
                    }
            }
            __syncthreads();
        }
        static_assert(WK == 1 || (WK - 1) * WM * WN * MT * NTL * 8 * RF_WAVE * 4 <= BM * LD * 2, "k-split scratch exceeds As");
        qg_reduce_k<WK, MT * NTL * 8, WM * WN>(reinterpret_cast<float*>(&acc[0][0]), wk, wmn, lane, reinterpret_cast<float*>(As));
        if (wk != 0) return;
#pragma unroll
        for (int i = 0; i < MT; ++i)
#pragma unroll
            for (int j = 0; j < NTL; ++j)
#pragma unroll
                for (int q = 0; q < 8; ++q) {
#if RF_GFX >= 0x1200
                    const int r = hi * 8 + q;
#else
                    const int r = 2 * q + hi;
#endif
                    qg_store(M, N, m0 + wm0 + i * 16 + r, n0 + wn0 + j * 16 + lr, acc[i][j][q], bias, y);
                }
        return;
    }
#endif

    if constexpr (PATH == QG_SIMT) {
        // Each thread owns a TM x TN patch: rows ty + i*(BM/TM)... spread so that shared reads broadcast.
        constexpr int TN = 4;
        constexpr int TX = BN / TN;            // threads along N
        constexpr int TY = NT / TX;            // threads along M
        constexpr int TM = BM / TY;
        static_assert(NT % TX == 0 && BM % TY == 0 && TM >= 1, "SIMT tile does not split over the threads");
        const int tx = threadIdx.x % TX, ty = threadIdx.x / TX;
        float acc[TM][TN];
#pragma unroll
        for (int i = 0; i < TM; ++i)
#pragma unroll
            for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;
        for (int k0 = 0; k0 < K; k0 += BK) {
            qg_load_x<BM, BK, LD, NT>(M, K, x, m0, k0, As);
            qg_load_w<FMT, BN, BK, LD, NT>(N, K, row_bytes, w, n0, k0, Bs);
            __syncthreads();
#pragma unroll 4
            for (int k = 0; k < BK; ++k) {
                float a[TM], b[TN];
#pragma unroll
                for (int i = 0; i < TM; ++i) a[i] = __half2float(As[(ty + i * TY) * LD + k]);
#pragma unroll
                for (int j = 0; j < TN; ++j) b[j] = __half2float(Bs[(tx + j * TX) * LD + k]);
#pragma unroll
                for (int i = 0; i < TM; ++i)
#pragma unroll
                    for (int j = 0; j < TN; ++j) acc[i][j] += a[i] * b[j];
            }
            __syncthreads();
        }
#pragma unroll
        for (int i = 0; i < TM; ++i)
#pragma unroll
            for (int j = 0; j < TN; ++j) qg_store(M, N, m0 + ty + i * TY, n0 + tx + j * TX, acc[i][j], bias, y);
        return;
    }
    }
}
