// Matrix paths of the attention kernels (attn_prefill.hip, attn_decode.hip's matrix-core decode): per-wave
// 16-row fragments of S = Q K^T and O += P V over K/V rows in shared memory, with the element -> (row, col,
// row slot) maps the tile loops' masking and online softmax use.
//   MMScalar  portable, every target (lanes compute dot products from shared memory; RF_ATTN_LPR lanes a row)
//   MMSync    NVIDIA mma.sync m16n8k16 (f16/bf16 -> f32) with ldmatrix; P stays in registers
//   MMAmd     CDNA MFMA 16x16x16 (wave64) and RDNA3/RDNA4 WMMA 16x16x16 (wave32); P via shared memory
//             (RF_ATTN_CSPLIT waves share 16 rows, each with HD / RF_ATTN_CSPLIT columns of O)
// Every path: row slot j of a lane holds row slot_row(j, lane); element i is in slot slot(i).
// Shared rows are LD = HD + AP_PAD elements apart.
#define AP_PAD 8
#define AP_LOG2E 1.4426950408889634f

RF_DEVICE float ap_exp2(float x) {
#if defined(RF_NVIDIA)
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
#else
    return exp2f(x);
#endif
}

// ---------------------------------------------------------------- portable path
template <typename T, int HD, int BN>
struct MMScalar {
    static constexpr int LPR = RF_ATTN_LPR;  // lanes per row
    static constexpr int RW = RF_WAVE / LPR;
    static constexpr int SN = BN / LPR, ON = HD / LPR, NSLOT = 1;
    static constexpr int LD = HD + AP_PAD;
    static constexpr int SCRATCH = RW * BN * 4;  // bytes per wave
    static RF_DEVICE int slot(int) { return 0; }
    static RF_DEVICE int slot_row(int, int lane) { return lane / LPR; }
    static RF_DEVICE int srow(int, int lane) { return lane / LPR; }
    static RF_DEVICE int scol(int i, int lane) { return lane % LPR + LPR * i; }
    static RF_DEVICE int orow(int, int lane) { return lane / LPR; }
    static RF_DEVICE int ocol(int i, int lane) { return lane % LPR + LPR * i; }
    static RF_DEVICE float row_max(float v) {
#pragma unroll
        for (int m = LPR / 2; m > 0; m >>= 1) v = fmaxf(v, RF_SHFL_XOR(v, m));
        return v;
    }
    static RF_DEVICE float row_sum(float v) {
#pragma unroll
        for (int m = LPR / 2; m > 0; m >>= 1) v += RF_SHFL_XOR(v, m);
        return v;
    }
    static RF_DEVICE void qk(const T* sQw, const T* sK, float* s, int lane) {
        const T* qr = sQw + (lane / LPR) * LD;
#pragma unroll
        for (int i = 0; i < SN; i++) {
            const T* kr = sK + scol(i, lane) * LD;
            float acc = 0.0f;
            // partly unrolled: fully unrolled, HIP 6.4 hoists every load and spills on RDNA (wave32)
#pragma unroll 8
            for (int d = 0; d < HD; d++) acc = fmaf(rf_to_f32(qr[d]), rf_to_f32(kr[d]), acc);
            s[i] = acc;
        }
    }
    static RF_DEVICE void pv(const float* p, const T* sV, float* o, unsigned char* scratch, int lane) {
        float* sp = (float*)scratch;
        const int row = lane / LPR;
#pragma unroll
        for (int i = 0; i < SN; i++) sp[row * BN + scol(i, lane)] = p[i];
        RF_SYNC_WAVE();
#pragma unroll 4
        for (int k = 0; k < BN; k++) {
            const float pk = sp[row * BN + k];
#pragma unroll
            for (int i = 0; i < ON; i++) o[i] = fmaf(pk, rf_to_f32(sV[k * LD + ocol(i, lane)]), o[i]);
        }
        RF_SYNC_WAVE();
    }
};

// ---------------------------------------------------------------- NVIDIA mma.sync path
// bf16 P is split into hi + lo parts for P.V on every matrix-core path (see MMSync::pv).
template <typename T> struct ApSplitP { static constexpr bool v = false; };
template <> struct ApSplitP<rf_bf16> { static constexpr bool v = true; };

#if defined(RF_MMA_SYNC)
// ldmatrix x4 (and .trans) on a shared-space byte address: with a lane's base address plus a compile-time
// offset, ptxas folds the offset into the instruction (no per-fragment address arithmetic)
RF_DEVICE void ap_ldsm_x4_s(uint32_t* r, unsigned a) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n" : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
}
RF_DEVICE void ap_ldsm_x4_ts(uint32_t* r, unsigned a) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n" : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
}
// the same on a generic pointer into shared memory
RF_DEVICE void ap_ldsm_x4(uint32_t* r, const void* p) { ap_ldsm_x4_s(r, (unsigned)__cvta_generic_to_shared(p)); }
RF_DEVICE void ap_ldsm_x4_t(uint32_t* r, const void* p) { ap_ldsm_x4_ts(r, (unsigned)__cvta_generic_to_shared(p)); }
RF_DEVICE void ap_mma(float* c, const uint32_t* a, uint32_t b0, uint32_t b1, rf_half*) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3]) : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
RF_DEVICE void ap_mma(float* c, const uint32_t* a, uint32_t b0, uint32_t b1, rf_bf16*) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3]) : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
RF_DEVICE uint32_t ap_pack(float a, float b, rf_half*) {
    __half2 h = __floats2half2_rn(a, b);
    return *(uint32_t*)&h;
}
RF_DEVICE uint32_t ap_pack(float a, float b, rf_bf16*) {
    __nv_bfloat162 h = __floats2bfloat162_rn(a, b);
    return *(uint32_t*)&h;
}


template <typename T, int HD, int BN>
struct MMSync {
    static constexpr int RW = 16, SN = BN / 2, ON = HD / 2, NSLOT = 2;  // 16 x N fragments: N/8 tiles of 4
    static constexpr int LD = HD + AP_PAD;
    static constexpr int SCRATCH = 0;
    static RF_DEVICE int slot(int i) { return (i & 3) >> 1; }
    static RF_DEVICE int slot_row(int j, int lane) { return lane / 4 + 8 * j; }
    static RF_DEVICE int srow(int i, int lane) { return lane / 4 + 8 * ((i & 3) >> 1); }
    static RF_DEVICE int scol(int i, int lane) { return (i >> 2) * 8 + (lane & 3) * 2 + (i & 1); }
    static RF_DEVICE int orow(int i, int lane) { return srow(i, lane); }
    static RF_DEVICE int ocol(int i, int lane) { return scol(i, lane); }
    static RF_DEVICE float row_max(float v) {
        v = fmaxf(v, RF_SHFL_XOR(v, 1));
        return fmaxf(v, RF_SHFL_XOR(v, 2));
    }
    static RF_DEVICE float row_sum(float v) {
        v += RF_SHFL_XOR(v, 1);
        return v + RF_SHFL_XOR(v, 2);
    }
    static RF_DEVICE void qk(const T* sQw, const T* sK, float* s, int lane) {
#pragma unroll
        for (int i = 0; i < SN; i++) s[i] = 0.0f;
        const int j = lane / 8;
#pragma unroll
        for (int kk = 0; kk < HD / 16; kk++) {
            uint32_t a[4];
            ap_ldsm_x4(a, sQw + (lane % 16) * LD + kk * 16 + (lane / 16) * 8);
#pragma unroll
            for (int np = 0; np < BN / 16; np++) {
                uint32_t b[4];
                ap_ldsm_x4(b, sK + (np * 16 + (lane % 8) + (j / 2) * 8) * LD + kk * 16 + (j % 2) * 8);
                ap_mma(s + (2 * np) * 4, a, b[0], b[1], (T*)nullptr);
                ap_mma(s + (2 * np + 1) * 4, a, b[2], b[3], (T*)nullptr);
            }
        }
    }
    // bf16 P keeps only 8 significant bits (~1.1e-3 relative error in O by itself), so for bf16 P is
    // split into hi + lo bf16 parts (P - hi is exact in f32 and its bf16 rounding leaves ~2^-16) and
    // P.V takes two mma per V fragment; f16 P (11 bits) is used as is.
    static RF_DEVICE void pv(const float* p, const T* sV, float* o, unsigned char*, int lane) {
        constexpr bool SPLIT = ApSplitP<T>::v;
        const int j = lane / 8;
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++) {
            uint32_t a[4], al[4];
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const float x = p[(2 * kk + i / 2) * 4 + (i % 2) * 2], y = p[(2 * kk + i / 2) * 4 + (i % 2) * 2 + 1];
                a[i] = ap_pack(x, y, (T*)nullptr);
                if (SPLIT) al[i] = ap_pack(x - __uint_as_float(a[i] << 16), y - __uint_as_float(a[i] & 0xffff0000u), (T*)nullptr);
            }
#pragma unroll
            for (int np = 0; np < HD / 16; np++) {
                uint32_t b[4];
                ap_ldsm_x4_t(b, sV + (kk * 16 + (lane % 8) + (j % 2) * 8) * LD + np * 16 + (j / 2) * 8);
                ap_mma(o + (2 * np) * 4, a, b[0], b[1], (T*)nullptr);
                ap_mma(o + (2 * np + 1) * 4, a, b[2], b[3], (T*)nullptr);
                if (SPLIT) {
                    ap_mma(o + (2 * np) * 4, al, b[0], b[1], (T*)nullptr);
                    ap_mma(o + (2 * np + 1) * 4, al, b[2], b[3], (T*)nullptr);
                }
            }
        }
    }
};
#endif

// ---------------------------------------------------------------- AMD MFMA / WMMA path
#if defined(RF_MFMA) || defined(RF_WMMA)
// One 16x16 output tile per instruction. CPT accumulator elements per lane; each lane holds KPL
// consecutive k of an A row (row lane % 16) starting at KOFF, and of a B column (col lane % 16).
#if defined(RF_WMMA) && RF_GFX < 0x1200
#define AP_KPL 16
#define AP_KOFF(lane) 0
#define AP_CROW(c, lane) (2 * (c) + (lane) / 16)
#else
#define AP_KPL (16 * 16 / RF_WAVE)
#define AP_KOFF(lane) (((lane) / 16) * AP_KPL)
#define AP_CROW(c, lane) (((lane) / 16) * (256 / RF_WAVE) + (c))
#endif
typedef rf_vec<short, AP_KPL> ap_vs;
typedef rf_vec<rf_f16_elem, AP_KPL> ap_vh;
typedef rf_vec<float, 256 / RF_WAVE> ap_vf;

RF_DEVICE ap_vf ap_amd_mma(ap_vs a, ap_vs b, ap_vf c, rf_half*) {
#if defined(RF_MFMA)
    return __builtin_amdgcn_mfma_f32_16x16x16f16(__builtin_bit_cast(ap_vh, a), __builtin_bit_cast(ap_vh, b), c, 0, 0, 0);
#elif RF_GFX >= 0x1200
    return __builtin_amdgcn_wmma_f32_16x16x16_f16_w32_gfx12(__builtin_bit_cast(ap_vh, a), __builtin_bit_cast(ap_vh, b), c);
#else
    return __builtin_amdgcn_wmma_f32_16x16x16_f16_w32(__builtin_bit_cast(ap_vh, a), __builtin_bit_cast(ap_vh, b), c);
#endif
}
RF_DEVICE ap_vf ap_amd_mma(ap_vs a, ap_vs b, ap_vf c, rf_bf16*) {
#if defined(RF_MFMA)
    return __builtin_amdgcn_mfma_f32_16x16x16bf16_1k(a, b, c, 0, 0, 0);
#elif RF_GFX >= 0x1200
    return __builtin_amdgcn_wmma_f32_16x16x16_bf16_w32_gfx12(a, b, c);
#else
    return __builtin_amdgcn_wmma_f32_16x16x16_bf16_w32(a, b, c);
#endif
}

template <typename T, int HD, int BN>
struct MMAmd {
    static constexpr int CPT = 256 / RF_WAVE;
    static constexpr int HDO = HD / RF_ATTN_CSPLIT;  // O columns of this wave
    static constexpr int RW = 16, SN = BN / 16 * CPT, ON = HDO / 16 * CPT, NSLOT = CPT;
    static constexpr int LD = HD + AP_PAD, LDP = BN + AP_PAD;
    static constexpr int SCRATCH = 16 * LDP * 2;
    static RF_DEVICE int slot(int i) { return i % CPT; }
    static RF_DEVICE int slot_row(int j, int lane) { return AP_CROW(j, lane); }
    static RF_DEVICE int srow(int i, int lane) { return AP_CROW(i % CPT, lane); }
    static RF_DEVICE int scol(int i, int lane) { return (i / CPT) * 16 + lane % 16; }
    static RF_DEVICE int orow(int i, int lane) { return srow(i, lane); }
    static RF_DEVICE int ocol(int i, int lane) { return scol(i, lane); }
    static RF_DEVICE float row_max(float v) {
#pragma unroll
        for (int m = 1; m < 16; m <<= 1) v = fmaxf(v, RF_SHFL_XOR(v, m));
        return v;
    }
    static RF_DEVICE float row_sum(float v) {
#pragma unroll
        for (int m = 1; m < 16; m <<= 1) v += RF_SHFL_XOR(v, m);
        return v;
    }
    // A fragment (and a B fragment whose k runs along memory): KPL consecutive 16-bit values, read with
    // 16-byte (8-byte for KPL 4) shared-memory loads; every row start is 16-byte aligned (LD, LDP % 8 == 0).
    static RF_DEVICE ap_vs frag_k(const unsigned short* rowp, int lane) {
        ap_vs v;
        __builtin_memcpy(&v, __builtin_assume_aligned(rowp + AP_KOFF(lane), AP_KPL >= 8 ? 16 : 8), sizeof(v));
        return v;
    }
    // B fragment whose k runs across rows (V in P.V): one 16-bit value per row.
    static RF_DEVICE ap_vs frag_strided(const unsigned short* B, int ldb_k, int lane) {
        ap_vs v;
#pragma unroll
        for (int j = 0; j < AP_KPL; j++) v[j] = (short)B[(AP_KOFF(lane) + j) * ldb_k + lane % 16];
        return v;
    }
    static RF_DEVICE void mma(ap_vs a, ap_vs b, float* c) {
        ap_vf acc;
#pragma unroll
        for (int i = 0; i < CPT; i++) acc[i] = c[i];
        acc = ap_amd_mma(a, b, acc, (T*)nullptr);
#pragma unroll
        for (int i = 0; i < CPT; i++) c[i] = acc[i];
    }
    static RF_DEVICE void qk(const T* sQw, const T* sK, float* s, int lane) {
#pragma unroll
        for (int i = 0; i < SN; i++) s[i] = 0.0f;
        // not unrolled over k: unrolled, the scheduler hoists every fragment load and runs out of VGPRs
#pragma unroll 1
        for (int kk = 0; kk < HD / 16; kk++) {
            const ap_vs a = frag_k((const unsigned short*)sQw + (lane % 16) * LD + kk * 16, lane);
#pragma unroll
            for (int nt = 0; nt < BN / 16; nt++)  // B[k][n] = K[n][k]
                mma(a, frag_k((const unsigned short*)sK + (nt * 16 + lane % 16) * LD + kk * 16, lane), s + nt * CPT);
        }
    }
    // P goes through the wave's scratch as T; a bf16 P twice, as its hi and lo parts (as MMSync::pv:
    // bf16 alone leaves ~2e-3 relative error in O, which the emulated gfx90a/gfx942/gfx1100/gfx1200
    // runs of gpu_attention found), reusing the one scratch so the LDS budget stays as it was.
    static RF_DEVICE void pv(const float* p, const T* sV, float* o, unsigned char* scratch, int lane) {
        constexpr int PARTS = ApSplitP<T>::v ? 2 : 1;
        T* sp = (T*)scratch;
#pragma unroll
        for (int part = 0; part < PARTS; part++) {
#pragma unroll
            for (int i = 0; i < SN; i++) {
                const T hi = rf_from_f32<T>(p[i]);
                sp[srow(i, lane) * LDP + scol(i, lane)] = part == 0 ? hi : rf_from_f32<T>(p[i] - rf_to_f32(hi));
            }
            RF_SYNC_WAVE();
#pragma unroll
            for (int kk = 0; kk < BN / 16; kk++) {
                const ap_vs a = frag_k((const unsigned short*)sp + (lane % 16) * LDP + kk * 16, lane);
#pragma unroll
                for (int nt = 0; nt < HDO / 16; nt++)  // B[k][n] = V[key][d]
                    mma(a, frag_strided((const unsigned short*)sV + kk * 16 * LD + nt * 16, LD, lane), o + nt * CPT);
            }
            RF_SYNC_WAVE();
        }
    }
};
#endif
