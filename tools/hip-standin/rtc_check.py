#!/usr/bin/env python3
"""Compile kernel sources through the stand-in's hipRTC (no GPU needed) and check that a cubin comes back.

usage: rtc_check.py LIB SOURCE.hip...
  LIB: the stand-in library holding hipRTC (OUT/5/lib/libamdhip64.so.5 or OUT/6/lib/libhiprtc.so.6).
  SOURCEs: emulated instances as the crate renders them for the stand-in, e.g. dumped with
  `ROCMFORGE_DUMP_DIR=d rocmforge compile --target gfx942@sm_90 --kernel smoke`.
Without a CUDA driver set ROCMFORGE_STANDIN_SM (e.g. 90); NVRTC is found as rtc.c says (or set
ROCMFORGE_STANDIN_NVRTC). The options are the crate's hipRTC options for an emulated target. Also
checks that a compile error's log comes back through hiprtcGetProgramLog.
"""
import ctypes
import sys


def main():
    lib = ctypes.CDLL(sys.argv[1])
    lib.hiprtcGetErrorString.restype = ctypes.c_char_p
    opts = [b"--offload-arch=gfx942:sramecc+:xnack-@sm_90", b"-O3", b"-std=c++17"]

    def compile_(src, name):
        prog = ctypes.c_void_p()
        rc = lib.hiprtcCreateProgram(ctypes.byref(prog), src, name, 0, None, None)
        if rc:
            raise SystemExit(f"hiprtcCreateProgram: {lib.hiprtcGetErrorString(rc).decode()}")
        arr = (ctypes.c_char_p * len(opts))(*opts)
        rc = lib.hiprtcCompileProgram(prog, len(opts), arr)
        n = ctypes.c_size_t()
        lib.hiprtcGetProgramLogSize(prog, ctypes.byref(n))
        log = ctypes.create_string_buffer(n.value + 1)
        lib.hiprtcGetProgramLog(prog, log)
        code = b""
        if rc == 0:
            lib.hiprtcGetCodeSize(prog, ctypes.byref(n))
            buf = ctypes.create_string_buffer(n.value)
            lib.hiprtcGetCode(prog, buf)
            code = buf.raw
        lib.hiprtcDestroyProgram(ctypes.byref(prog))
        return rc, log.value.decode(errors="replace"), code

    bad = 0
    for path in sys.argv[2:]:
        rc, log, code = compile_(open(path, "rb").read(), path.encode())
        # a cubin: ELF with e_machine EM_CUDA (190)
        ok = rc == 0 and code[:4] == b"\x7fELF" and code[18] == 190
        bad += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {path}: {len(code)} bytes" + ("" if ok else f"\n{lib.hiprtcGetErrorString(rc).decode()}\n{log}"))
    rc, log, _ = compile_(b'extern "C" __global__ void k() { undeclared(); }', b"broken.hip")
    if rc != 6 or "undeclared" not in log or "HIP stand-in" not in log:
        print(f"FAIL compile error: rc {rc}, log {log!r}")
        bad += 1
    else:
        print("ok   a compile error comes back as HIPRTC_ERROR_COMPILATION with NVRTC's log")
    n = len(sys.argv) - 2
    print(f"{sys.argv[1]}: {n - (bad if bad <= n else n)} of {n} sources compiled to cubins" + (", compile errors logged" if not bad else f"; {bad} checks FAILED"))
    sys.exit(1 if bad else 0)


main()
