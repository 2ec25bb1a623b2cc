/* A stand-in libamdhip64: the HIP runtime entry points ROCmForge loads (src/gpu/hip/mod.rs), forwarded
 * to the CUDA driver API (libcuda.so.1, opened at first use). A test tool, never part of the crate: it
 * lets `ROCMFORGE_DEVICE=hip` run the crate's HIP host code (library discovery, device properties in
 * the struct layout of the ROCm headers it is compiled against, module load, launches, events, graphs,
 * errors) on an NVIDIA GPU. Kernels are the crate's emulated AMD instances, compiled by the stand-in's
 * hipRTC (rtc.c) with NVRTC.
 *
 * Compiled against ROCm's own headers (HIP 5.2 or 6.x, -D__HIP_PLATFORM_AMD__), so every definition
 * below must match ROCm's prototype and hipDeviceProp_t is ROCm's layout. No CUDA header is needed:
 * the few driver types and constants are declared here.
 *
 * Environment: ROCMFORGE_STANDIN_ARCH (gcnArchName, default gfx942:sramecc+:xnack-; warpSize follows it),
 * ROCMFORGE_STANDIN_LIBCUDA (path of libcuda, default libcuda.so.1). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hip/hip_runtime_api.h>

#define EXPORT __attribute__((visibility("default")))

/* ---- the CUDA driver API, declared by hand (cuda.h values, stable since CUDA 10) ---- */
typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
typedef void *CUcontext, *CUmodule, *CUfunction, *CUstream, *CUevent, *CUgraph, *CUgraphExec;

enum {
    CU_ATTR_MAX_THREADS_PER_BLOCK = 1, CU_ATTR_MAX_BLOCK_DIM_X = 2, CU_ATTR_MAX_BLOCK_DIM_Y = 3,
    CU_ATTR_MAX_BLOCK_DIM_Z = 4, CU_ATTR_MAX_GRID_DIM_X = 5, CU_ATTR_MAX_GRID_DIM_Y = 6,
    CU_ATTR_MAX_GRID_DIM_Z = 7, CU_ATTR_MAX_SHARED_PER_BLOCK = 8, CU_ATTR_TOTAL_CONST = 9,
    CU_ATTR_MAX_REGS_PER_BLOCK = 12, CU_ATTR_CLOCK_RATE = 13, CU_ATTR_SM_COUNT = 16,
    CU_ATTR_INTEGRATED = 18, CU_ATTR_CAN_MAP_HOST = 19, CU_ATTR_CONCURRENT_KERNELS = 31,
    CU_ATTR_PCI_BUS = 33, CU_ATTR_PCI_DEVICE = 34, CU_ATTR_MEM_CLOCK = 36, CU_ATTR_BUS_WIDTH = 37,
    CU_ATTR_L2 = 38, CU_ATTR_MAX_THREADS_PER_SM = 39, CU_ATTR_PCI_DOMAIN = 50, CU_ATTR_CC_MAJOR = 75,
    CU_ATTR_CC_MINOR = 76, CU_ATTR_MAX_SHARED_PER_SM = 81, CU_ATTR_MANAGED = 83,
    CU_ATTR_COOPERATIVE = 95, CU_ATTR_SHARED_OPTIN = 97,
};
enum {
    CU_FUNC_MAX_THREADS = 0, CU_FUNC_SHARED = 1, CU_FUNC_CONST = 2, CU_FUNC_LOCAL = 3,
    CU_FUNC_REGS = 4, CU_FUNC_PTX = 5, CU_FUNC_BINARY = 6, CU_FUNC_CACHE_CA = 7,
    CU_FUNC_MAX_DYN_SHARED = 8,
};

/* field, driver symbol, older symbol tried when the first is missing (or NULL), parameters */
#define CU_SYMS(X)                                                                                  \
    X(Init, "cuInit", NULL, (unsigned))                                                             \
    X(DriverGetVersion, "cuDriverGetVersion", NULL, (int *))                                        \
    X(DeviceGetCount, "cuDeviceGetCount", NULL, (int *))                                            \
    X(DeviceGet, "cuDeviceGet", NULL, (CUdevice *, int))                                            \
    X(DeviceGetAttribute, "cuDeviceGetAttribute", NULL, (int *, int, CUdevice))                     \
    X(DeviceGetName, "cuDeviceGetName", NULL, (char *, int, CUdevice))                              \
    X(DeviceTotalMem, "cuDeviceTotalMem_v2", NULL, (size_t *, CUdevice))                            \
    X(PrimaryCtxRetain, "cuDevicePrimaryCtxRetain", NULL, (CUcontext *, CUdevice))                  \
    X(CtxSetCurrent, "cuCtxSetCurrent", NULL, (CUcontext))                                          \
    X(CtxSynchronize, "cuCtxSynchronize", NULL, (void))                                             \
    X(GetErrorName, "cuGetErrorName", NULL, (CUresult, const char **))                              \
    X(GetErrorString, "cuGetErrorString", NULL, (CUresult, const char **))                          \
    X(MemAlloc, "cuMemAlloc_v2", NULL, (CUdeviceptr *, size_t))                                     \
    X(MemFree, "cuMemFree_v2", NULL, (CUdeviceptr))                                                 \
    X(MemHostAlloc, "cuMemHostAlloc", NULL, (void **, size_t, unsigned))                            \
    X(MemFreeHost, "cuMemFreeHost", NULL, (void *))                                                 \
    X(MemcpyHtoD, "cuMemcpyHtoD_v2", NULL, (CUdeviceptr, const void *, size_t))                     \
    X(MemcpyDtoH, "cuMemcpyDtoH_v2", NULL, (void *, CUdeviceptr, size_t))                           \
    X(MemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2", NULL, (CUdeviceptr, const void *, size_t, CUstream)) \
    X(MemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2", NULL, (void *, CUdeviceptr, size_t, CUstream))       \
    X(MemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2", NULL, (CUdeviceptr, CUdeviceptr, size_t, CUstream))  \
    X(MemsetD8, "cuMemsetD8_v2", NULL, (CUdeviceptr, unsigned char, size_t))                        \
    X(MemsetD8Async, "cuMemsetD8Async", NULL, (CUdeviceptr, unsigned char, size_t, CUstream))       \
    X(MemGetInfo, "cuMemGetInfo_v2", NULL, (size_t *, size_t *))                                    \
    X(ModuleLoadData, "cuModuleLoadData", NULL, (CUmodule *, const void *))                         \
    X(ModuleUnload, "cuModuleUnload", NULL, (CUmodule))                                             \
    X(ModuleGetFunction, "cuModuleGetFunction", NULL, (CUfunction *, CUmodule, const char *))       \
    X(FuncGetAttribute, "cuFuncGetAttribute", NULL, (int *, int, CUfunction))                       \
    X(FuncSetAttribute, "cuFuncSetAttribute", NULL, (CUfunction, int, int))                         \
    X(LaunchKernel, "cuLaunchKernel", NULL,                                                         \
      (CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CUstream,  \
       void **, void **))                                                                           \
    X(StreamCreate, "cuStreamCreate", NULL, (CUstream *, unsigned))                                 \
    X(StreamDestroy, "cuStreamDestroy_v2", NULL, (CUstream))                                        \
    X(StreamSynchronize, "cuStreamSynchronize", NULL, (CUstream))                                   \
    X(StreamWaitEvent, "cuStreamWaitEvent", NULL, (CUstream, CUevent, unsigned))                    \
    X(EventCreate, "cuEventCreate", NULL, (CUevent *, unsigned))                                    \
    X(EventDestroy, "cuEventDestroy_v2", NULL, (CUevent))                                           \
    X(EventRecord, "cuEventRecord", NULL, (CUevent, CUstream))                                      \
    X(EventSynchronize, "cuEventSynchronize", NULL, (CUevent))                                      \
    X(EventElapsedTime, "cuEventElapsedTime_v2", "cuEventElapsedTime", (float *, CUevent, CUevent)) \
    X(StreamBeginCapture, "cuStreamBeginCapture_v2", NULL, (CUstream, int))                         \
    X(StreamEndCapture, "cuStreamEndCapture", NULL, (CUstream, CUgraph *))                          \
    X(StreamIsCapturing, "cuStreamIsCapturing", NULL, (CUstream, int *))                            \
    X(ThreadExchangeCaptureMode, "cuThreadExchangeStreamCaptureMode", NULL, (int *))                \
    X(GraphInstantiate, "cuGraphInstantiateWithFlags", NULL,                                        \
      (CUgraphExec *, CUgraph, unsigned long long))                                                 \
    X(GraphLaunch, "cuGraphLaunch", NULL, (CUgraphExec, CUstream))                                  \
    X(GraphExecDestroy, "cuGraphExecDestroy", NULL, (CUgraphExec))                                  \
    X(GraphDestroy, "cuGraphDestroy", NULL, (CUgraph))

#define DECL(f, n1, n2, args) CUresult(*f) args;
static struct {
    CU_SYMS(DECL)
} cu;
#undef DECL

/* ---- loading and per-thread context ---- */
static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static char load_error[768]; /* set when libcuda could not be used: every call then fails with it */
static hipError_t load_code = hipSuccess;
#define MAX_DEVICES 64
static CUcontext primary[MAX_DEVICES];
static pthread_mutex_t primary_lock = PTHREAD_MUTEX_INITIALIZER;
static __thread int tls_device = -1; /* device whose primary context this thread has made current */
static __thread int tls_code;        /* the last error this thread returned, with its detail */
static __thread char tls_detail[512];
static __thread char tls_message[1024];

static hipError_t fail(hipError_t code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tls_detail, sizeof tls_detail, fmt, ap);
    va_end(ap);
    tls_code = code;
    return code;
}

static void *sym(void *h, const char *name, const char *older) {
    void *p = dlsym(h, name);
    return p || !older ? p : dlsym(h, older);
}

static void load(void) {
    const char *path = getenv("ROCMFORGE_STANDIN_LIBCUDA");
    if (!path || !*path) path = "libcuda.so.1";
    void *h = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
    if (!h) {
        load_code = hipErrorNoDevice;
        snprintf(load_error, sizeof load_error,
                 "HIP stand-in: cannot load the CUDA driver: %s", dlerror());
        return;
    }
#define LOAD(f, n1, n2, args)                                                                    \
    cu.f = (CUresult(*) args)sym(h, n1, n2);                                                     \
    if (!cu.f) {                                                                                 \
        load_code = hipErrorNotSupported;                                                        \
        snprintf(load_error, sizeof load_error, "HIP stand-in: %s lacks %s", path, n1);          \
        return;                                                                                  \
    }
    CU_SYMS(LOAD)
#undef LOAD
    CUresult r = cu.Init(0);
    if (r != 0) {
        const char *s = "?";
        cu.GetErrorString(r, &s);
        load_code = r == 100 ? hipErrorNoDevice : hipErrorNotInitialized;
        snprintf(load_error, sizeof load_error, "HIP stand-in: cuInit failed: CUDA error %d (%s)", r, s);
    }
}

static hipError_t map_cu(CUresult r) {
    switch (r) {
    case 0: return hipSuccess;
    case 1: return hipErrorInvalidValue;
    case 2: return hipErrorOutOfMemory;
    case 3: return hipErrorNotInitialized;
    case 4: return hipErrorDeinitialized;
    case 100: return hipErrorNoDevice;
    case 101: return hipErrorInvalidDevice;
    case 200: return hipErrorInvalidImage;
    case 201: return hipErrorInvalidContext;
    case 209: return hipErrorNoBinaryForGpu;
    case 218: return hipErrorInvalidKernelFile;
    case 300: return hipErrorInvalidSource;
    case 301: return hipErrorFileNotFound;
    case 400: return hipErrorInvalidHandle;
    case 500: return hipErrorNotFound;
    case 600: return hipErrorNotReady;
    case 700: return hipErrorIllegalAddress;
    case 701: return hipErrorLaunchOutOfResources;
    case 702: return hipErrorLaunchTimeOut;
    case 710: return hipErrorAssert;
    case 719: return hipErrorLaunchFailure;
    case 801: return hipErrorNotSupported;
    case 900: return hipErrorStreamCaptureUnsupported;
    case 901: return hipErrorStreamCaptureInvalidated;
    case 902: return hipErrorStreamCaptureMerge;
    case 903: return hipErrorStreamCaptureUnmatched;
    case 904: return hipErrorStreamCaptureUnjoined;
    case 905: return hipErrorStreamCaptureIsolation;
    case 906: return hipErrorStreamCaptureImplicit;
    case 907: return hipErrorCapturedEvent;
    case 908: return hipErrorStreamCaptureWrongThread;
    default: return hipErrorUnknown;
    }
}

/* A CUDA result as a HIP error, remembering the driver's own name and text for hipGetErrorString. */
static hipError_t cu_check(CUresult r, const char *what) {
    if (r == 0) return hipSuccess;
    const char *name = "?", *text = "?";
    cu.GetErrorName(r, &name);
    cu.GetErrorString(r, &text);
    return fail(map_cu(r), "%s: %s (%d): %s", what, name, r, text);
}
#define CU(call, what) cu_check(cu.call, what)

static hipError_t bind(int dev) {
    int n = 0;
    hipError_t e = CU(DeviceGetCount(&n), "cuDeviceGetCount");
    if (e) return e;
    if (dev < 0 || dev >= n || dev >= MAX_DEVICES)
        return fail(hipErrorInvalidDevice, "device %d of %d", dev, n);
    pthread_mutex_lock(&primary_lock);
    if (!primary[dev]) {
        CUdevice d;
        e = CU(DeviceGet(&d, dev), "cuDeviceGet");
        if (!e) e = CU(PrimaryCtxRetain(&primary[dev], d), "cuDevicePrimaryCtxRetain");
    }
    pthread_mutex_unlock(&primary_lock);
    if (e) return e;
    e = CU(CtxSetCurrent(primary[dev]), "cuCtxSetCurrent");
    if (!e) tls_device = dev;
    return e;
}

/* Every entry point starts here: load the driver once, and give this thread a current context
 * (device 0's primary context until hipSetDevice says otherwise). */
static hipError_t ready(void) {
    pthread_once(&load_once, load);
    if (load_code) return fail(load_code, "%s", load_error);
    return tls_device < 0 ? bind(0) : hipSuccess;
}
#define READY()                         \
    do {                                \
        hipError_t e_ = ready();        \
        if (e_) return e_;              \
    } while (0)

static CUdeviceptr dp(const void *p) { return (CUdeviceptr)(size_t)p; }

/* ---- the emulated AMD device ---- */
static const char *arch_name(void) {
    const char *a = getenv("ROCMFORGE_STANDIN_ARCH");
    return a && *a ? a : "gfx942:sramecc+:xnack-";
}

/* 64 lanes on GCN/CDNA (gfx6..gfx9), 32 on RDNA (gfx10 and later); the major is the gfx number
 * without its last two (hex) digits. */
static int arch_wave(void) {
    const char *a = arch_name();
    if (strncmp(a, "gfx", 3) != 0) return 64;
    size_t n = strcspn(a + 3, ":");
    if (n < 3) return 64;
    char major[8] = {0};
    memcpy(major, a + 3, n - 2 < sizeof major - 1 ? n - 2 : sizeof major - 1);
    return atoi(major) >= 10 ? 32 : 64;
}

static int cu_attr(int attr, int dev) {
    CUdevice d;
    int v = 0;
    if (cu.DeviceGet(&d, dev) == 0 && cu.DeviceGetAttribute(&v, attr, d) == 0) return v;
    return 0;
}

EXPORT hipError_t hipInit(unsigned int flags) {
    (void)flags;
    READY();
    return hipSuccess;
}

EXPORT hipError_t hipDriverGetVersion(int *v) {
    READY();
    return CU(DriverGetVersion(v), "cuDriverGetVersion");
}

EXPORT hipError_t hipRuntimeGetVersion(int *v) {
    READY();
    *v = HIP_VERSION; /* the ROCm headers this stand-in was built from */
    return hipSuccess;
}

EXPORT hipError_t hipGetDeviceCount(int *n) {
    READY();
    return CU(DeviceGetCount(n), "cuDeviceGetCount");
}

EXPORT hipError_t hipSetDevice(int dev) {
    pthread_once(&load_once, load);
    if (load_code) return fail(load_code, "%s", load_error);
    return tls_device == dev ? hipSuccess : bind(dev);
}

EXPORT hipError_t hipDeviceGetAttribute(int *v, hipDeviceAttribute_t attr, int dev) {
    READY();
    int a;
    switch (attr) {
    case hipDeviceAttributeWarpSize: *v = arch_wave(); return hipSuccess;
    case hipDeviceAttributeMaxThreadsPerBlock: a = CU_ATTR_MAX_THREADS_PER_BLOCK; break;
    case hipDeviceAttributeMaxBlockDimX: a = CU_ATTR_MAX_BLOCK_DIM_X; break;
    case hipDeviceAttributeMaxBlockDimY: a = CU_ATTR_MAX_BLOCK_DIM_Y; break;
    case hipDeviceAttributeMaxBlockDimZ: a = CU_ATTR_MAX_BLOCK_DIM_Z; break;
    case hipDeviceAttributeMaxGridDimX: a = CU_ATTR_MAX_GRID_DIM_X; break;
    case hipDeviceAttributeMaxGridDimY: a = CU_ATTR_MAX_GRID_DIM_Y; break;
    case hipDeviceAttributeMaxGridDimZ: a = CU_ATTR_MAX_GRID_DIM_Z; break;
    case hipDeviceAttributeMaxSharedMemoryPerBlock: a = CU_ATTR_MAX_SHARED_PER_BLOCK; break;
    case hipDeviceAttributeTotalConstantMemory: a = CU_ATTR_TOTAL_CONST; break;
    case hipDeviceAttributeMaxRegistersPerBlock: a = CU_ATTR_MAX_REGS_PER_BLOCK; break;
    case hipDeviceAttributeClockRate: a = CU_ATTR_CLOCK_RATE; break;
    case hipDeviceAttributeMemoryClockRate: a = CU_ATTR_MEM_CLOCK; break;
    case hipDeviceAttributeMemoryBusWidth: a = CU_ATTR_BUS_WIDTH; break;
    case hipDeviceAttributeMultiprocessorCount: a = CU_ATTR_SM_COUNT; break;
    case hipDeviceAttributeL2CacheSize: a = CU_ATTR_L2; break;
    case hipDeviceAttributeMaxThreadsPerMultiProcessor: a = CU_ATTR_MAX_THREADS_PER_SM; break;
    /* The NVIDIA host's compute capability (a real AMD device reports its gfx major/minor here):
     * the crate compiles the emulated AMD instances for it. */
    case hipDeviceAttributeComputeCapabilityMajor: a = CU_ATTR_CC_MAJOR; break;
    case hipDeviceAttributeComputeCapabilityMinor: a = CU_ATTR_CC_MINOR; break;
    case hipDeviceAttributeMaxSharedMemoryPerMultiprocessor: a = CU_ATTR_MAX_SHARED_PER_SM; break;
    case hipDeviceAttributeIntegrated: a = CU_ATTR_INTEGRATED; break;
    case hipDeviceAttributeCanMapHostMemory: a = CU_ATTR_CAN_MAP_HOST; break;
    case hipDeviceAttributeConcurrentKernels: a = CU_ATTR_CONCURRENT_KERNELS; break;
    case hipDeviceAttributePciBusId: a = CU_ATTR_PCI_BUS; break;
    case hipDeviceAttributePciDeviceId: a = CU_ATTR_PCI_DEVICE; break;
    case hipDeviceAttributePciDomainID: a = CU_ATTR_PCI_DOMAIN; break;
    case hipDeviceAttributeManagedMemory: a = CU_ATTR_MANAGED; break;
    case hipDeviceAttributeCooperativeLaunch: a = CU_ATTR_COOPERATIVE; break;
    default: return fail(hipErrorInvalidValue, "hipDeviceGetAttribute: attribute %d is not forwarded by the stand-in", (int)attr);
    }
    CUdevice d;
    hipError_t e = CU(DeviceGet(&d, dev), "cuDeviceGet");
    if (e) return e;
    return CU(DeviceGetAttribute(v, a, d), "cuDeviceGetAttribute");
}

EXPORT hipError_t hipDeviceGetName(char *name, int len, int dev) {
    READY();
    CUdevice d;
    char cuname[256] = {0};
    hipError_t e = CU(DeviceGet(&d, dev), "cuDeviceGet");
    if (!e) e = CU(DeviceGetName(cuname, sizeof cuname - 1, d), "cuDeviceGetName");
    if (e) return e;
    if (!name || len <= 0) return fail(hipErrorInvalidValue, "hipDeviceGetName: no buffer");
    /* The crate recognises the stand-in by this prefix (src/gpu/hip/mod.rs, STANDIN_NAME). */
    snprintf(name, (size_t)len, "AMD stand-in (on %s)", cuname);
    return hipSuccess;
}

EXPORT hipError_t hipDeviceTotalMem(size_t *bytes, int dev) {
    READY();
    CUdevice d;
    hipError_t e = CU(DeviceGet(&d, dev), "cuDeviceGet");
    return e ? e : CU(DeviceTotalMem(bytes, d), "cuDeviceTotalMem_v2");
}

/* The fields both hipDeviceProp_t layouts (HIP 5.2 and 6.x) have, filled from the CUDA device. */
#define FILL_PROPS(p, dev)                                                                    \
    do {                                                                                      \
        memset((p), 0, sizeof *(p));                                                          \
        hipError_t e_ = hipDeviceGetName((p)->name, sizeof (p)->name, (dev));                 \
        if (e_) return e_;                                                                    \
        e_ = hipDeviceTotalMem(&(p)->totalGlobalMem, (dev));                                  \
        if (e_) return e_;                                                                    \
        snprintf((p)->gcnArchName, sizeof (p)->gcnArchName, "%s", arch_name());               \
        (p)->warpSize = arch_wave();                                                          \
        (p)->sharedMemPerBlock = (size_t)cu_attr(CU_ATTR_MAX_SHARED_PER_BLOCK, (dev));        \
        (p)->regsPerBlock = cu_attr(CU_ATTR_MAX_REGS_PER_BLOCK, (dev));                       \
        (p)->maxThreadsPerBlock = cu_attr(CU_ATTR_MAX_THREADS_PER_BLOCK, (dev));              \
        for (int i_ = 0; i_ < 3; i_++) {                                                      \
            (p)->maxThreadsDim[i_] = cu_attr(CU_ATTR_MAX_BLOCK_DIM_X + i_, (dev));            \
            (p)->maxGridSize[i_] = cu_attr(CU_ATTR_MAX_GRID_DIM_X + i_, (dev));               \
        }                                                                                     \
        (p)->clockRate = cu_attr(CU_ATTR_CLOCK_RATE, (dev));                                  \
        (p)->memoryClockRate = cu_attr(CU_ATTR_MEM_CLOCK, (dev));                             \
        (p)->memoryBusWidth = cu_attr(CU_ATTR_BUS_WIDTH, (dev));                              \
        (p)->totalConstMem = (size_t)cu_attr(CU_ATTR_TOTAL_CONST, (dev));                     \
        (p)->major = cu_attr(CU_ATTR_CC_MAJOR, (dev));                                        \
        (p)->minor = cu_attr(CU_ATTR_CC_MINOR, (dev));                                        \
        (p)->multiProcessorCount = cu_attr(CU_ATTR_SM_COUNT, (dev));                          \
        (p)->l2CacheSize = cu_attr(CU_ATTR_L2, (dev));                                        \
        (p)->maxThreadsPerMultiProcessor = cu_attr(CU_ATTR_MAX_THREADS_PER_SM, (dev));        \
        (p)->concurrentKernels = cu_attr(CU_ATTR_CONCURRENT_KERNELS, (dev));                  \
        (p)->pciDomainID = cu_attr(CU_ATTR_PCI_DOMAIN, (dev));                                \
        (p)->pciBusID = cu_attr(CU_ATTR_PCI_BUS, (dev));                                      \
        (p)->pciDeviceID = cu_attr(CU_ATTR_PCI_DEVICE, (dev));                                \
        (p)->maxSharedMemoryPerMultiProcessor = (size_t)cu_attr(CU_ATTR_MAX_SHARED_PER_SM, (dev)); \
        (p)->canMapHostMemory = cu_attr(CU_ATTR_CAN_MAP_HOST, (dev));                         \
        (p)->integrated = cu_attr(CU_ATTR_INTEGRATED, (dev));                                 \
        (p)->cooperativeLaunch = cu_attr(CU_ATTR_COOPERATIVE, (dev));                         \
        (p)->managedMemory = cu_attr(CU_ATTR_MANAGED, (dev));                                 \
    } while (0)

#if HIP_VERSION_MAJOR >= 6
/* HIP 6 renames hipGetDeviceProperties to hipGetDevicePropertiesR0600 (the new layout) and keeps the
 * old name, and hipGetDevicePropertiesR0000, for the 5.x layout (hip/hip_deprecated.h). */
#include <hip/hip_deprecated.h>
EXPORT hipError_t hipGetDevicePropertiesR0600(hipDeviceProp_tR0600 *p, int dev) {
    READY();
    FILL_PROPS(p, dev);
    return hipSuccess;
}
EXPORT hipError_t hipGetDevicePropertiesR0000(hipDeviceProp_tR0000 *p, int dev) {
    READY();
    FILL_PROPS(p, dev);
    return hipSuccess;
}
#undef hipGetDeviceProperties
EXPORT hipError_t hipGetDeviceProperties(hipDeviceProp_tR0000 *p, int dev) {
    return hipGetDevicePropertiesR0000(p, dev);
}
#else
EXPORT hipError_t hipGetDeviceProperties(hipDeviceProp_t *p, int dev) {
    READY();
    FILL_PROPS(p, dev);
    p->gcnArch = 0;
    return hipSuccess;
}
#endif

EXPORT hipError_t hipDeviceSynchronize(void) {
    READY();
    return CU(CtxSynchronize(), "cuCtxSynchronize");
}

/* ---- memory ---- */
EXPORT hipError_t hipMalloc(void **p, size_t bytes) {
    READY();
    CUdeviceptr d = 0;
    hipError_t e = CU(MemAlloc(&d, bytes), "cuMemAlloc_v2");
    *p = e ? NULL : (void *)(size_t)d;
    return e;
}

EXPORT hipError_t hipFree(void *p) {
    READY();
    return p ? CU(MemFree(dp(p)), "cuMemFree_v2") : hipSuccess;
}

EXPORT hipError_t hipHostMalloc(void **p, size_t bytes, unsigned int flags) {
    READY();
    /* hipHostMallocPortable/Mapped/WriteCombined = CU_MEMHOSTALLOC_PORTABLE/DEVICEMAP/WRITECOMBINED */
    return CU(MemHostAlloc(p, bytes, flags & 7u), "cuMemHostAlloc");
}

EXPORT hipError_t hipHostFree(void *p) {
    READY();
    return p ? CU(MemFreeHost(p), "cuMemFreeHost") : hipSuccess;
}

EXPORT hipError_t hipMemcpyHtoD(hipDeviceptr_t dst, void *src, size_t n) {
    READY();
    return CU(MemcpyHtoD(dp(dst), src, n), "cuMemcpyHtoD_v2");
}

EXPORT hipError_t hipMemcpyDtoH(void *dst, hipDeviceptr_t src, size_t n) {
    READY();
    return CU(MemcpyDtoH(dst, dp(src), n), "cuMemcpyDtoH_v2");
}

EXPORT hipError_t hipMemcpyHtoDAsync(hipDeviceptr_t dst, void *src, size_t n, hipStream_t s) {
    READY();
    return CU(MemcpyHtoDAsync(dp(dst), src, n, (CUstream)s), "cuMemcpyHtoDAsync_v2");
}

EXPORT hipError_t hipMemcpyDtoHAsync(void *dst, hipDeviceptr_t src, size_t n, hipStream_t s) {
    READY();
    return CU(MemcpyDtoHAsync(dst, dp(src), n, (CUstream)s), "cuMemcpyDtoHAsync_v2");
}

EXPORT hipError_t hipMemcpyDtoDAsync(hipDeviceptr_t dst, hipDeviceptr_t src, size_t n, hipStream_t s) {
    READY();
    return CU(MemcpyDtoDAsync(dp(dst), dp(src), n, (CUstream)s), "cuMemcpyDtoDAsync_v2");
}

EXPORT hipError_t hipMemsetD8(hipDeviceptr_t dst, unsigned char v, size_t n) {
    READY();
    return CU(MemsetD8(dp(dst), v, n), "cuMemsetD8_v2");
}

EXPORT hipError_t hipMemsetD8Async(hipDeviceptr_t dst, unsigned char v, size_t n, hipStream_t s) {
    READY();
    return CU(MemsetD8Async(dp(dst), v, n, (CUstream)s), "cuMemsetD8Async");
}

EXPORT hipError_t hipMemGetInfo(size_t *free_, size_t *total) {
    READY();
    return CU(MemGetInfo(free_, total), "cuMemGetInfo_v2");
}

/* ---- modules and launches ---- */
EXPORT hipError_t hipModuleLoadData(hipModule_t *m, const void *image) {
    READY();
    return CU(ModuleLoadData((CUmodule *)m, image), "cuModuleLoadData");
}

EXPORT hipError_t hipModuleUnload(hipModule_t m) {
    READY();
    return CU(ModuleUnload((CUmodule)m), "cuModuleUnload");
}

EXPORT hipError_t hipModuleGetFunction(hipFunction_t *f, hipModule_t m, const char *name) {
    READY();
    return CU(ModuleGetFunction((CUfunction *)f, (CUmodule)m, name), "cuModuleGetFunction");
}

EXPORT hipError_t hipFuncGetAttribute(int *v, hipFunction_attribute attr, hipFunction_t f) {
    READY();
    int a;
    switch (attr) {
    case HIP_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK: a = CU_FUNC_MAX_THREADS; break;
    case HIP_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES: a = CU_FUNC_SHARED; break;
    case HIP_FUNC_ATTRIBUTE_CONST_SIZE_BYTES: a = CU_FUNC_CONST; break;
    case HIP_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES: a = CU_FUNC_LOCAL; break;
    case HIP_FUNC_ATTRIBUTE_NUM_REGS: a = CU_FUNC_REGS; break;
    case HIP_FUNC_ATTRIBUTE_PTX_VERSION: a = CU_FUNC_PTX; break;
    case HIP_FUNC_ATTRIBUTE_BINARY_VERSION: a = CU_FUNC_BINARY; break;
    case HIP_FUNC_ATTRIBUTE_CACHE_MODE_CA: a = CU_FUNC_CACHE_CA; break;
    case HIP_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES: a = CU_FUNC_MAX_DYN_SHARED; break;
    default: return fail(hipErrorInvalidValue, "hipFuncGetAttribute: attribute %d is not forwarded", (int)attr);
    }
    return CU(FuncGetAttribute(v, a, (CUfunction)f), "cuFuncGetAttribute");
}

EXPORT hipError_t hipModuleLaunchKernel(hipFunction_t f, unsigned int gx, unsigned int gy,
                                        unsigned int gz, unsigned int bx, unsigned int by,
                                        unsigned int bz, unsigned int shared, hipStream_t s,
                                        void **params, void **extra) {
    READY();
    /* AMD kernels may use all LDS dynamically without opting in (the crate's HIP backend never
     * does); CUDA wants an opt-in above 48 KiB, so the stand-in makes it. */
    if (shared > 0) {
        int cur = 0;
        hipError_t e = CU(FuncGetAttribute(&cur, CU_FUNC_MAX_DYN_SHARED, (CUfunction)f), "cuFuncGetAttribute");
        if (!e && (unsigned)cur < shared)
            e = CU(FuncSetAttribute((CUfunction)f, CU_FUNC_MAX_DYN_SHARED, (int)shared), "cuFuncSetAttribute");
        if (e) return e;
    }
    return CU(LaunchKernel((CUfunction)f, gx, gy, gz, bx, by, bz, shared, (CUstream)s, params, extra),
              "cuLaunchKernel");
}

/* ---- streams and events ---- */
EXPORT hipError_t hipStreamCreate(hipStream_t *s) {
    READY();
    return CU(StreamCreate((CUstream *)s, 0), "cuStreamCreate");
}

EXPORT hipError_t hipStreamCreateWithFlags(hipStream_t *s, unsigned int flags) {
    READY();
    /* hipStreamNonBlocking = CU_STREAM_NON_BLOCKING = 1 */
    return CU(StreamCreate((CUstream *)s, flags & 1u), "cuStreamCreate");
}

EXPORT hipError_t hipStreamDestroy(hipStream_t s) {
    READY();
    return CU(StreamDestroy((CUstream)s), "cuStreamDestroy_v2");
}

EXPORT hipError_t hipStreamSynchronize(hipStream_t s) {
    READY();
    return CU(StreamSynchronize((CUstream)s), "cuStreamSynchronize");
}

EXPORT hipError_t hipStreamWaitEvent(hipStream_t s, hipEvent_t ev, unsigned int flags) {
    READY();
    return CU(StreamWaitEvent((CUstream)s, (CUevent)ev, flags), "cuStreamWaitEvent");
}

EXPORT hipError_t hipEventCreate(hipEvent_t *ev) {
    READY();
    return CU(EventCreate((CUevent *)ev, 0), "cuEventCreate");
}

EXPORT hipError_t hipEventDestroy(hipEvent_t ev) {
    READY();
    return CU(EventDestroy((CUevent)ev), "cuEventDestroy_v2");
}

EXPORT hipError_t hipEventRecord(hipEvent_t ev, hipStream_t s) {
    READY();
    return CU(EventRecord((CUevent)ev, (CUstream)s), "cuEventRecord");
}

EXPORT hipError_t hipEventSynchronize(hipEvent_t ev) {
    READY();
    return CU(EventSynchronize((CUevent)ev), "cuEventSynchronize");
}

EXPORT hipError_t hipEventElapsedTime(float *ms, hipEvent_t a, hipEvent_t b) {
    READY();
    return CU(EventElapsedTime(ms, (CUevent)a, (CUevent)b), "cuEventElapsedTime");
}

/* ---- stream capture and graphs (the capture mode and status enums have CUDA's values) ---- */
EXPORT hipError_t hipStreamBeginCapture(hipStream_t s, hipStreamCaptureMode mode) {
    READY();
    return CU(StreamBeginCapture((CUstream)s, (int)mode), "cuStreamBeginCapture_v2");
}

EXPORT hipError_t hipStreamEndCapture(hipStream_t s, hipGraph_t *g) {
    READY();
    return CU(StreamEndCapture((CUstream)s, (CUgraph *)g), "cuStreamEndCapture");
}

EXPORT hipError_t hipStreamIsCapturing(hipStream_t s, hipStreamCaptureStatus *status) {
    READY();
    int st = 0;
    hipError_t e = CU(StreamIsCapturing((CUstream)s, &st), "cuStreamIsCapturing");
    if (!e) *status = (hipStreamCaptureStatus)st;
    return e;
}

EXPORT hipError_t hipThreadExchangeStreamCaptureMode(hipStreamCaptureMode *mode) {
    READY();
    int m = (int)*mode;
    hipError_t e = CU(ThreadExchangeCaptureMode(&m), "cuThreadExchangeStreamCaptureMode");
    if (!e) *mode = (hipStreamCaptureMode)m;
    return e;
}

EXPORT hipError_t hipGraphInstantiate(hipGraphExec_t *exec, hipGraph_t g, hipGraphNode_t *err_node,
                                      char *log, size_t log_size) {
    READY();
    if (err_node) *err_node = NULL;
    if (log && log_size) log[0] = 0;
    return CU(GraphInstantiate((CUgraphExec *)exec, (CUgraph)g, 0), "cuGraphInstantiateWithFlags");
}

EXPORT hipError_t hipGraphLaunch(hipGraphExec_t exec, hipStream_t s) {
    READY();
    return CU(GraphLaunch((CUgraphExec)exec, (CUstream)s), "cuGraphLaunch");
}

EXPORT hipError_t hipGraphExecDestroy(hipGraphExec_t exec) {
    READY();
    return CU(GraphExecDestroy((CUgraphExec)exec), "cuGraphExecDestroy");
}

EXPORT hipError_t hipGraphDestroy(hipGraph_t g) {
    READY();
    return CU(GraphDestroy((CUgraph)g), "cuGraphDestroy");
}

/* ---- errors ---- */
static const char *hip_text(hipError_t e) {
    switch (e) {
    case hipSuccess: return "no error";
    case hipErrorInvalidValue: return "invalid argument";
    case hipErrorOutOfMemory: return "out of memory";
    case hipErrorNotInitialized: return "initialization error";
    case hipErrorDeinitialized: return "driver shutting down";
    case hipErrorNoDevice: return "no ROCm-capable device is detected";
    case hipErrorInvalidDevice: return "invalid device ordinal";
    case hipErrorInvalidImage: return "device kernel image is invalid";
    case hipErrorInvalidContext: return "invalid device context";
    case hipErrorNoBinaryForGpu: return "no kernel image is available for execution on the device";
    case hipErrorInvalidKernelFile: return "invalid kernel file";
    case hipErrorInvalidSource: return "device kernel image is invalid";
    case hipErrorFileNotFound: return "file not found";
    case hipErrorInvalidHandle: return "invalid resource handle";
    case hipErrorNotFound: return "named symbol not found";
    case hipErrorNotReady: return "device not ready";
    case hipErrorIllegalAddress: return "an illegal memory access was encountered";
    case hipErrorLaunchOutOfResources: return "too many resources requested for launch";
    case hipErrorLaunchTimeOut: return "the launch timed out and was terminated";
    case hipErrorAssert: return "device-side assert triggered";
    case hipErrorLaunchFailure: return "unspecified launch failure";
    case hipErrorNotSupported: return "operation not supported";
    case hipErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case hipErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    case hipErrorStreamCaptureMerge: return "operation would result in a merge of separate capture sequences";
    case hipErrorStreamCaptureUnmatched: return "capture was not ended in the same stream as it began";
    case hipErrorStreamCaptureUnjoined: return "capturing stream has unjoined work";
    case hipErrorStreamCaptureIsolation: return "dependency created on uncaptured work in another stream";
    case hipErrorStreamCaptureImplicit: return "operation would make the legacy stream depend on a capturing blocking stream";
    case hipErrorCapturedEvent: return "operation not permitted on an event last recorded in a capturing stream";
    case hipErrorStreamCaptureWrongThread: return "attempt to terminate a thread-local capture sequence from another thread";
    default: return "unknown error";
    }
}

/* ROCm's text for the code; when it is the error this thread last returned, with what the stand-in
 * knows about it (the CUDA call, its error name and text, or why libcuda could not be used). */
EXPORT const char *hipGetErrorString(hipError_t e) {
    const char *base = hip_text(e);
    if (e != hipSuccess && (int)e == tls_code && tls_detail[0]) {
        snprintf(tls_message, sizeof tls_message, "%s [%s]", base, tls_detail);
        return tls_message;
    }
    return base;
}
