/* A stand-in hipRTC (libhiprtc.so.6, or inside libamdhip64.so.5 as ROCm 5 has it): the entry points
 * ROCmForge loads (src/gpu/hip/hiprtc.rs), forwarded to NVRTC. It compiles for the NVIDIA GPU the
 * stand-in runtime runs on, so `hiprtcGetCode` gives a cubin that `hipModuleLoadData` (standin.c)
 * hands to `cuModuleLoadData`. The source must be CUDA: on the stand-in the crate renders its AMD
 * instances emulated (prelude_cuda.h + prelude_emu.h), as for `ROCMFORGE_EMULATE`.
 *
 * Options are translated: AMD ones (--offload-arch=, -O<n>, -m..., -f...) are dropped,
 * --gpu-architecture=sm_XY (the current device's compute capability, or ROCMFORGE_STANDIN_SM=XY when
 * there is no driver), -default-device and -I<CUDA include dir> are added. The NVRTC log comes back as
 * the program log, with the translated options on a failed compile.
 *
 * Environment: ROCMFORGE_STANDIN_NVRTC (path of libnvrtc), CUDA_HOME / CUDA_PATH, ROCMFORGE_CUDA_INCLUDE,
 * ROCMFORGE_STANDIN_SM, ROCMFORGE_STANDIN_LIBCUDA. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hip/hip_version.h>
#include <hip/hiprtc.h>

#define EXPORT __attribute__((visibility("default")))

typedef int nvrtcResult;
typedef void *nvrtcProgram;

static struct {
    nvrtcResult (*Version)(int *, int *);
    const char *(*GetErrorString)(nvrtcResult);
    nvrtcResult (*CreateProgram)(nvrtcProgram *, const char *, const char *, int, const char *const *,
                                 const char *const *);
    nvrtcResult (*CompileProgram)(nvrtcProgram, int, const char *const *);
    nvrtcResult (*GetProgramLogSize)(nvrtcProgram, size_t *);
    nvrtcResult (*GetProgramLog)(nvrtcProgram, char *);
    nvrtcResult (*GetCUBINSize)(nvrtcProgram, size_t *);
    nvrtcResult (*GetCUBIN)(nvrtcProgram, char *);
    nvrtcResult (*DestroyProgram)(nvrtcProgram *);
} nv;
static char nv_path[512], nv_error[1024], cuda_include[600];
static __thread char rtc_why[512]; /* why this thread's last compile failed inside the stand-in */
static pthread_once_t nv_once = PTHREAD_ONCE_INIT;

static int exists(const char *p) { return access(p, R_OK) == 0; }

static void find_include(void) {
    char cand[8][600];
    int n = 0;
    const char *env[] = {"ROCMFORGE_CUDA_INCLUDE", "CUDA_HOME", "CUDA_PATH"};
    for (int i = 0; i < 3; i++) {
        const char *v = getenv(env[i]);
        if (v && *v) snprintf(cand[n++], 600, i == 0 ? "%s" : "%s/include", v);
    }
    /* <root>/lib64/libnvrtc.so.N → <root>/include; PyPI's nvidia/cuda_nvrtc/lib → nvidia/cuda_runtime/include */
    const char *slash = strrchr(nv_path, '/');
    if (slash) {
        snprintf(cand[n++], 600, "%.*s/../include", (int)(slash - nv_path), nv_path);
        snprintf(cand[n++], 600, "%.*s/../../cuda_runtime/include", (int)(slash - nv_path), nv_path);
    }
    snprintf(cand[n++], 600, "/usr/local/cuda/include");
    for (int i = 0; i < n; i++) {
        char f[700];
        snprintf(f, sizeof f, "%s/cuda_fp16.h", cand[i]);
        if (exists(f)) {
            snprintf(cuda_include, sizeof cuda_include, "%s", cand[i]);
            return;
        }
    }
}

static void nv_load(void) {
    const char *names[] = {"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"};
    char cand[16][512];
    int n = 0;
    const char *e = getenv("ROCMFORGE_STANDIN_NVRTC");
    if (e && *e) snprintf(cand[n++], 512, "%s", e);
    const char *roots[] = {getenv("CUDA_HOME"), getenv("CUDA_PATH"), "/usr/local/cuda"};
    for (int r = 0; r < 3; r++)
        for (int i = 0; i < 3 && roots[r] && *roots[r]; i++) snprintf(cand[n++], 512, "%s/lib64/%s", roots[r], names[i]);
    for (int i = 0; i < 3; i++) snprintf(cand[n++], 512, "%s", names[i]);
    void *h = NULL;
    for (int i = 0; i < n && !h; i++) {
        h = dlopen(cand[i], RTLD_NOW | RTLD_LOCAL);
        if (h) snprintf(nv_path, sizeof nv_path, "%s", cand[i]);
    }
    if (!h) {
        snprintf(nv_error, sizeof nv_error, "HIP stand-in: NVRTC not found (tried ROCMFORGE_STANDIN_NVRTC, CUDA_HOME, CUDA_PATH, /usr/local/cuda/lib64, libnvrtc.so.13/.12): %s", dlerror());
        return;
    }
#define SYM(f, name)                                                                             \
    *(void **)&nv.f = dlsym(h, name);                                                            \
    if (!nv.f) {                                                                                 \
        snprintf(nv_error, sizeof nv_error, "HIP stand-in: %s lacks %s", nv_path, name);         \
        return;                                                                                  \
    }
    SYM(Version, "nvrtcVersion")
    SYM(GetErrorString, "nvrtcGetErrorString")
    SYM(CreateProgram, "nvrtcCreateProgram")
    SYM(CompileProgram, "nvrtcCompileProgram")
    SYM(GetProgramLogSize, "nvrtcGetProgramLogSize")
    SYM(GetProgramLog, "nvrtcGetProgramLog")
    SYM(GetCUBINSize, "nvrtcGetCUBINSize")
    SYM(GetCUBIN, "nvrtcGetCUBIN")
    SYM(DestroyProgram, "nvrtcDestroyProgram")
#undef SYM
    find_include();
}

/* The compute capability to compile for: the current context's device (device 0 without one). */
static int device_sm(char *why, size_t why_len) {
    const char *e = getenv("ROCMFORGE_STANDIN_SM");
    if (e && atoi(e) > 0) return atoi(e);
    const char *path = getenv("ROCMFORGE_STANDIN_LIBCUDA");
    void *h = dlopen(path && *path ? path : "libcuda.so.1", RTLD_NOW | RTLD_GLOBAL);
    if (!h) {
        snprintf(why, why_len, "HIP stand-in: no CUDA driver to ask for the GPU's compute capability (%s); set ROCMFORGE_STANDIN_SM=XY to compile without one", dlerror());
        return 0;
    }
    int (*init)(unsigned) = (int (*)(unsigned))dlsym(h, "cuInit");
    int (*ctxdev)(int *) = (int (*)(int *))dlsym(h, "cuCtxGetDevice");
    int (*get)(int *, int) = (int (*)(int *, int))dlsym(h, "cuDeviceGet");
    int (*attr)(int *, int, int) = (int (*)(int *, int, int))dlsym(h, "cuDeviceGetAttribute");
    int dev = 0, major = 0, minor = 0;
    if (!init || !ctxdev || !get || !attr || init(0) != 0) {
        snprintf(why, why_len, "HIP stand-in: the CUDA driver does not initialise");
        return 0;
    }
    if (ctxdev(&dev) != 0 && get(&dev, 0) != 0) {
        snprintf(why, why_len, "HIP stand-in: no CUDA device");
        return 0;
    }
    attr(&major, 75, dev); /* CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR */
    attr(&minor, 76, dev);
    return major * 10 + minor;
}

struct _hiprtcProgram {
    nvrtcProgram p;
    char *note; /* appended to NVRTC's log: what the stand-in did */
};

static hiprtcResult map_nv(nvrtcResult r) {
    switch (r) {
    case 0: return HIPRTC_SUCCESS;
    case 1: return HIPRTC_ERROR_OUT_OF_MEMORY;
    case 2: return HIPRTC_ERROR_PROGRAM_CREATION_FAILURE;
    case 3: return HIPRTC_ERROR_INVALID_INPUT;
    case 4: return HIPRTC_ERROR_INVALID_PROGRAM;
    case 5: return HIPRTC_ERROR_INVALID_OPTION;
    case 6: return HIPRTC_ERROR_COMPILATION;
    case 7: return HIPRTC_ERROR_BUILTIN_OPERATION_FAILURE;
    default: return HIPRTC_ERROR_INTERNAL_ERROR;
    }
}

EXPORT hiprtcResult hiprtcVersion(int *major, int *minor) {
    /* the ROCm release whose headers this stand-in was built from */
    *major = HIP_VERSION_MAJOR;
    *minor = HIP_VERSION_MINOR;
    return HIPRTC_SUCCESS;
}

EXPORT const char *hiprtcGetErrorString(hiprtcResult r) {
    switch (r) {
    case HIPRTC_SUCCESS: return "HIPRTC_SUCCESS";
    case HIPRTC_ERROR_OUT_OF_MEMORY: return "HIPRTC_ERROR_OUT_OF_MEMORY";
    case HIPRTC_ERROR_PROGRAM_CREATION_FAILURE: return "HIPRTC_ERROR_PROGRAM_CREATION_FAILURE";
    case HIPRTC_ERROR_INVALID_INPUT: return "HIPRTC_ERROR_INVALID_INPUT";
    case HIPRTC_ERROR_INVALID_PROGRAM: return "HIPRTC_ERROR_INVALID_PROGRAM";
    case HIPRTC_ERROR_INVALID_OPTION: return "HIPRTC_ERROR_INVALID_OPTION";
    case HIPRTC_ERROR_COMPILATION: return "HIPRTC_ERROR_COMPILATION";
    case HIPRTC_ERROR_BUILTIN_OPERATION_FAILURE: return "HIPRTC_ERROR_BUILTIN_OPERATION_FAILURE";
    case HIPRTC_ERROR_INTERNAL_ERROR:
        /* the stand-in's own failures (no NVRTC, no driver to ask for the architecture) say why */
        return nv_error[0] ? nv_error : rtc_why[0] ? rtc_why : "HIPRTC_ERROR_INTERNAL_ERROR";
    default: return "HIPRTC_ERROR_INTERNAL_ERROR";
    }
}

EXPORT hiprtcResult hiprtcCreateProgram(hiprtcProgram *prog, const char *src, const char *name,
                                        int num_headers, const char **headers,
                                        const char **include_names) {
    pthread_once(&nv_once, nv_load);
    if (nv_error[0]) return HIPRTC_ERROR_INTERNAL_ERROR;
    struct _hiprtcProgram *p = calloc(1, sizeof *p);
    if (!p) return HIPRTC_ERROR_OUT_OF_MEMORY;
    nvrtcResult r = nv.CreateProgram(&p->p, src, name, num_headers, (const char *const *)headers,
                                     (const char *const *)include_names);
    if (r != 0) {
        free(p);
        return map_nv(r);
    }
    *prog = p;
    return HIPRTC_SUCCESS;
}

static int dropped(const char *o) {
    return strncmp(o, "--offload-arch", 14) == 0 || strncmp(o, "-O", 2) == 0 ||
           strncmp(o, "-m", 2) == 0 || strncmp(o, "-f", 2) == 0 ||
           strncmp(o, "--gpu-max-threads-per-block", 27) == 0;
}

EXPORT hiprtcResult hiprtcCompileProgram(hiprtcProgram prog, int n, const char **opts) {
    if (!prog) return HIPRTC_ERROR_INVALID_PROGRAM;
    const char **o = calloc((size_t)n + 4, sizeof *o);
    char arch[64] = "", inc[700] = "";
    size_t note_len = 256;
    for (int i = 0; i < n; i++) note_len += strlen(opts[i]) + 1;
    free(prog->note);
    prog->note = calloc(note_len + sizeof inc, 1);
    if (!o || !prog->note) {
        free(o);
        return HIPRTC_ERROR_OUT_OF_MEMORY;
    }
    int m = 0, has_arch = 0;
    for (int i = 0; i < n; i++) {
        if (dropped(opts[i])) continue;
        if (strncmp(opts[i], "--gpu-architecture", 18) == 0 || strncmp(opts[i], "-arch", 5) == 0) has_arch = 1;
        o[m++] = opts[i];
    }
    if (!has_arch) {
        int sm = device_sm(rtc_why, sizeof rtc_why);
        if (sm == 0) {
            snprintf(prog->note, note_len, "\n[%s]\n", rtc_why);
            free(o);
            return HIPRTC_ERROR_INTERNAL_ERROR;
        }
        snprintf(arch, sizeof arch, "--gpu-architecture=sm_%d", sm);
        o[m++] = arch;
    }
    o[m++] = "-default-device";
    if (cuda_include[0]) {
        snprintf(inc, sizeof inc, "-I%s", cuda_include);
        o[m++] = inc;
    }
    nvrtcResult r = nv.CompileProgram(prog->p, m, o);
    if (r != 0) {
        char *w = prog->note;
        w += sprintf(w, "\n[HIP stand-in: NVRTC %s:", nv_path);
        for (int i = 0; i < m; i++) w += sprintf(w, " %s", o[i]);
        sprintf(w, "]\n");
    }
    free(o);
    return map_nv(r);
}

EXPORT hiprtcResult hiprtcGetProgramLogSize(hiprtcProgram prog, size_t *size) {
    if (!prog) return HIPRTC_ERROR_INVALID_PROGRAM;
    size_t n = 0;
    nvrtcResult r = nv.GetProgramLogSize(prog->p, &n); /* counts NVRTC's NUL */
    if (r != 0) return map_nv(r);
    *size = n + (prog->note ? strlen(prog->note) : 0);
    return HIPRTC_SUCCESS;
}

EXPORT hiprtcResult hiprtcGetProgramLog(hiprtcProgram prog, char *log) {
    if (!prog) return HIPRTC_ERROR_INVALID_PROGRAM;
    nvrtcResult r = nv.GetProgramLog(prog->p, log);
    if (r != 0) return map_nv(r);
    if (prog->note) strcat(log, prog->note);
    return HIPRTC_SUCCESS;
}

EXPORT hiprtcResult hiprtcGetCodeSize(hiprtcProgram prog, size_t *size) {
    if (!prog) return HIPRTC_ERROR_INVALID_PROGRAM;
    return map_nv(nv.GetCUBINSize(prog->p, size));
}

EXPORT hiprtcResult hiprtcGetCode(hiprtcProgram prog, char *code) {
    if (!prog) return HIPRTC_ERROR_INVALID_PROGRAM;
    return map_nv(nv.GetCUBIN(prog->p, code));
}

EXPORT hiprtcResult hiprtcDestroyProgram(hiprtcProgram *prog) {
    if (!prog || !*prog) return HIPRTC_ERROR_INVALID_PROGRAM;
    nv.DestroyProgram(&(*prog)->p);
    free((*prog)->note);
    free(*prog);
    *prog = NULL;
    return HIPRTC_SUCCESS;
}
