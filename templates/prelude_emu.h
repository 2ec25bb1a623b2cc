// ---- prelude: AMD target emulated on an NVIDIA GPU (NVRTC; a test/debug mode, issue 13) ----
// Follows prelude_cuda.h. The instance is rendered exactly as for the AMD target (RF_WAVE, RF_GFX,
// RF_MFMA/RF_WMMA); this file gives the AMD lane semantics on 32-lane warps:
//  - wave64: one AMD wave is two warps, 64 consecutive threads of the block. Its cross-lane
//    operations exchange 32-bit words through rf_emu_xchg (one word per thread) and synchronize the
//    two warps with a named barrier of 64 threads, id 1 + wave (ids 1..15; id 0 is __syncthreads),
//    so a block holds at most 15 waves of 64 (the launcher checks). Every lane of the wave must
//    reach each shuffle (no shuffles in wave-divergent code), as the AMD kernels already need for
//    defined results; a wave that does not is a hang here, not a wrong answer.
//  - wave32 (RDNA): a wave is a warp and the NVIDIA shuffles have the HIP semantics used here.
//  - matrix cores: each MFMA/WMMA builtin is a function that gathers its A/B fragments from the lanes
//    of the wave and scatters D by the register/lane layout tables that the renderer emits from
//    tests/data/amd_layouts (AMD's matrix instruction calculator), after this file.
// Timing, LDS banks and the AMD compiler's code generation are not emulated.

#undef RF_SHFL_XOR
#undef RF_SHFL
#undef RF_SYNC_WAVE
#undef RF_ANY

// Vectors of the clang ext_vector_type kind the AMD paths use (indexing, brace init, bit_cast).
// Aligned like AMD's (to their size), at most 16 bytes.
template <typename T, int N>
struct alignas(sizeof(T) * N >= 16 ? 16 : sizeof(T) * N) rf_vec {
    T v[N];
    RF_DEVICE T& operator[](int i) { return v[i]; }
    RF_DEVICE const T& operator[](int i) const { return v[i]; }
};
typedef __half rf_f16_elem;
#define __builtin_memcpy(d, s, n) memcpy((d), (s), (n))

RF_DEVICE int rf_emu_tid() { return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z); }
RF_DEVICE int rf_emu_threads() { return blockDim.x * blockDim.y * blockDim.z; }
RF_DEVICE int rf_emu_lane() { return rf_emu_tid() % RF_WAVE; }

// One 32-bit word per thread of the block (1024 threads at most): thread t writes word t, so wave w
// owns words [w * RF_WAVE, (w + 1) * RF_WAVE).
RF_DEVICE unsigned int* rf_emu_xchg() {
    __shared__ unsigned int rf_emu_xchg_buf[1024];
    return rf_emu_xchg_buf;
}

// Wave barrier with shared-memory ordering among the wave's lanes.
RF_DEVICE void rf_emu_wave_sync() {
#if RF_WAVE == 64
    const int w = rf_emu_tid() >> 6;
    // the last wave of a block that is not a whole number of waves has fewer (whole) warps
    int n = rf_emu_threads() - (w << 6);
    n = n >= 64 ? 64 : ((n + 31) & ~31);
    // PTX ISA, barrier{.cta}: the non-.aligned form, so lanes need not be converged when they arrive.
    asm volatile("barrier.sync %0, %1;" ::"r"(w + 1), "r"(n) : "memory");
#else
    __syncwarp();
#endif
}

template <typename T>
RF_DEVICE T rf_emu_shfl_lane(T v, int src) {
#if RF_WAVE == 64
    static_assert(sizeof(T) % 4 == 0, "32-bit words are exchanged");
    unsigned int w[sizeof(T) / 4];
    memcpy(w, &v, sizeof(T));
    unsigned int* x = rf_emu_xchg();
    const int me = rf_emu_tid(), base = me & ~63;
#pragma unroll
    for (int i = 0; i < (int)(sizeof(T) / 4); i++) {
        x[me] = w[i];
        rf_emu_wave_sync();
        w[i] = x[base + src];
        rf_emu_wave_sync();  // every lane has read before the next exchange writes
    }
    T r;
    memcpy(&r, w, sizeof(T));
    return r;
#else
    return __shfl_sync(0xffffffffu, v, src, 32);
#endif
}
// HIP's __shfl_xor(v, m, RF_WAVE) (hip/amd_detail/amd_warp_functions.h): lane ^ m, own value when
// that leaves the wave; __shfl(v, l, RF_WAVE): lane l modulo the wave (ds_bpermute reads the lane
// from address bits [7:2] on wave64: AMD CDNA3 ISA, "DS_BPERMUTE_B32").
template <typename T>
RF_DEVICE T rf_emu_shfl_xor(T v, int m) {
    const int lane = rf_emu_lane(), j = lane ^ m;
    return rf_emu_shfl_lane(v, j < RF_WAVE ? j : lane);
}
template <typename T>
RF_DEVICE T rf_emu_shfl(T v, int l) {
    return rf_emu_shfl_lane(v, l & (RF_WAVE - 1));
}
// HIP's __any(p): nonzero when p holds in any lane of the wave
RF_DEVICE int rf_emu_any(int p) {
#if RF_WAVE == 64
    unsigned int* x = rf_emu_xchg();
    const int me = rf_emu_tid(), base = me & ~63;
    x[me] = p != 0;
    rf_emu_wave_sync();
    unsigned int r = 0;
    for (int i = 0; i < 64; i++) r |= x[base + i];
    rf_emu_wave_sync();  // every lane has read before the next exchange writes
    return (int)r;
#else
    return __any_sync(0xffffffffu, p);
#endif
}
#define RF_SHFL_XOR(v, m) rf_emu_shfl_xor((v), (m))
#define RF_SHFL(v, l) rf_emu_shfl((v), (l))
#define RF_SYNC_WAVE() rf_emu_wave_sync()
#define RF_ANY(p) rf_emu_any((p))

// ---- integer dot products: the AMD builtins sdot4 / udot4 (AMD Instinct MI300 "CDNA3" ISA reference,
// section "VOP3P instructions": V_DOT4_I32_I8, V_DOT4_U32_U8) and sudot4 (RDNA3 ISA reference, section
// "VOP3P instructions": V_DOT4_I32_IU8, signedness of A and B from the NEG bits). D = C + the sum of
// the four byte products, in 32 bits; with clamp the sum saturates to the 32-bit range instead of
// wrapping. A portable dot-product macro of the preludes reaches them in emulated instances by being
// redefined here, after prelude_cuda.h: #undef RF_X, #define RF_X(a, b, c) rf_emu_sdot4((a), (b), (c), false).
// An int the optimizer cannot see through (so a dot-product pattern around it is not fused into a
// wrapping 32-bit dp4a).
RF_DEVICE int rf_emu_opaque(int v) {
    int r;
    asm volatile("mov.b32 %0, %1;" : "=r"(r) : "r"(v));
    return r;
}
RF_DEVICE int rf_emu_sat32(long long s, bool clamp) {
    if (clamp) s = s > 2147483647LL ? 2147483647LL : (s < -2147483648LL ? -2147483648LL : s);
    return (int)(unsigned int)(unsigned long long)s;
}
// The byte products are summed on their own (|sum| <= 65536, exact in 32 bits) and added to C in 64
// bits after: NVVM turns a 64-bit "C + products" loop into dp4a, whose 32-bit sum wraps before the
// clamp sees it (found by gpu_emulate's saturation cases on the H200).
RF_DEVICE int rf_emu_sdot4(int a, int b, int c, bool clamp) {
    int p = 0;
#pragma unroll
    for (int i = 0; i < 4; i++) p += (int)(signed char)(a >> (8 * i)) * (int)(signed char)(b >> (8 * i));
    return rf_emu_sat32((long long)c + (long long)rf_emu_opaque(p), clamp);
}
RF_DEVICE unsigned int rf_emu_udot4(unsigned int a, unsigned int b, unsigned int c, bool clamp) {
    unsigned long long s = c;
#pragma unroll
    for (int i = 0; i < 4; i++) s += (unsigned long long)((a >> (8 * i)) & 255u) * ((b >> (8 * i)) & 255u);
    return clamp && s > 0xffffffffull ? 0xffffffffu : (unsigned int)s;
}
// sudot4 (gfx11+): the NEG modifier bits say which of A and B are signed.
RF_DEVICE int rf_emu_sudot4(bool a_signed, int a, bool b_signed, int b, int c, bool clamp) {
    long long s = c;
    int p = 0;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int ab = (a >> (8 * i)) & 255, bb = (b >> (8 * i)) & 255;
        p += (a_signed ? (int)(signed char)ab : ab) * (b_signed ? (int)(signed char)bb : bb);
    }
    return rf_emu_sat32(s + (long long)rf_emu_opaque(p), clamp);
}

// ---- matrix cores
// A 16-bit matrix element as f32: f16 or bf16 bits.
template <bool BF16>
RF_DEVICE float rf_emu_h2f(unsigned int bits) {
    if (BF16) return __uint_as_float(bits << 16);
    return __half2float(__ushort_as_half((unsigned short)bits));
}
template <typename E>
RF_DEVICE unsigned int rf_emu_bits16(E e) {
    static_assert(sizeof(E) == 2, "16-bit matrix elements");
    unsigned short u;
    memcpy(&u, &e, 2);
    return u;
}

// D = A B + C of one M x N x K matrix instruction (one block), for a wave of W lanes. Layout tables,
// emitted by the renderer from the calculator's tables:
//   ta[row * K + k]  A[row][k] is held by lane (ta >> 8), vector element (ta & 255) (its first holder)
//   tb[k * N + col]  B[k][col] likewise
//   td[lane * CV + e] = row * N + col: vector element e of lane `lane` of C and D.
// 16-bit A/B elements 2r and 2r + 1 share register r (low half first; checked when emitted), so the
// fragments are gathered one register round at a time through the wave's exchange words.
// Not inlined, loops not unrolled: one small copy per instruction, cheap to compile (a kernel calls
// it from many unrolled sites); the fragments live in local memory. Speed is no aim here.
template <int W, int M, int N, int K, int VA, int VB, int CV, bool BF16, int MODS, typename TA, typename TB, typename TC>
__device__ __noinline__ TC rf_emu_mma(const TA a, const TB b, const TC c, const unsigned short* ta, const unsigned short* tb,
                                      const unsigned char* td) {
    static_assert(W == RF_WAVE, "instruction and wave size");
    static_assert(MODS == 0, "only CBSZ = ABID = BLGP = 0 is emulated (what the templates pass)");
    static_assert(VA % 2 == 0 && VB % 2 == 0, "whole 32-bit registers");
    const int lane = rf_emu_lane(), me = rf_emu_tid(), base = me - lane;
    unsigned int* x = rf_emu_xchg();
    float av[CV][K], bv[CV][K];
    // round r: every lane offers register r (elements 2r, 2r + 1) of A, then of B; each lane takes the
    // elements of its D rows / columns that the round holds.
#pragma unroll 1
    for (int r = 0; r < VA / 2 + VB / 2; r++) {
        const bool is_a = r < VA / 2;
        const int rr = is_a ? r : r - VA / 2;
        x[me] = is_a ? rf_emu_bits16(a[2 * rr]) | (rf_emu_bits16(a[2 * rr + 1]) << 16)
                     : rf_emu_bits16(b[2 * rr]) | (rf_emu_bits16(b[2 * rr + 1]) << 16);
        rf_emu_wave_sync();
#pragma unroll 1
        for (int e = 0; e < CV; e++) {
            const int rc = td[lane * CV + e], row = rc / N, col = rc % N;
#pragma unroll 1
            for (int k = 0; k < K; k++) {
                const int s = is_a ? ta[row * K + k] : tb[k * N + col];
                if (((s & 255) >> 1) == rr) {
                    const float v = rf_emu_h2f<BF16>((x[base + (s >> 8)] >> (16 * (s & 1))) & 0xffffu);
                    if (is_a) av[e][k] = v;
                    else bv[e][k] = v;
                }
            }
        }
        rf_emu_wave_sync();  // every lane has read before the next round writes
    }
    TC d;
#pragma unroll 1
    for (int e = 0; e < CV; e++) {
        float acc = c[e];
#pragma unroll 1
        for (int k = 0; k < K; k++) acc = fmaf(av[e][k], bv[e][k], acc);
        d[e] = acc;
    }
    return d;
}
