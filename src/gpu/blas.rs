//! The vendor BLAS (cuBLAS on NVIDIA, hipBLAS on AMD), loaded at run time like every vendor library:
//! the crate builds and runs without it, and asking for it where it is absent is an error naming every
//! path tried. Used for one thing: a GEMM with f16/bf16/f32 inputs and f32 accumulation — the
//! dequantize-then-GEMM fallback of the linear layer and the compute ceiling of the benchmarks.

use super::{Device, Raw, Stream, Vendor};
use crate::error::{Error, Result};
use std::sync::Mutex;

/// Element types a BLAS GEMM takes or returns here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlasType {
    F16,
    Bf16,
    F32,
}

impl BlasType {
    /// From a dtype name (`f16`, `bf16`, `f32`).
    pub fn from_dtype(d: &str) -> Result<BlasType> {
        match d {
            "f16" => Ok(BlasType::F16),
            "bf16" => Ok(BlasType::Bf16),
            "f32" => Ok(BlasType::F32),
            _ => Err(Error::op(
                "blas",
                format!("no BLAS type for `{d}`; supported: f16, bf16, f32"),
            )),
        }
    }
}

/// One column-major GEMM call, C = α·op(A)·op(B) + β·C, in the vendors' common shape.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GemmCall {
    pub trans_a: bool,
    pub trans_b: bool,
    pub m: i32,
    pub n: i32,
    pub k: i32,
    pub alpha: f32,
    pub a: u64,
    pub a_type: BlasType,
    pub lda: i32,
    pub b: u64,
    pub b_type: BlasType,
    pub ldb: i32,
    pub beta: f32,
    pub c: u64,
    pub c_type: BlasType,
    pub ldc: i32,
}

/// What a vendor BLAS backend provides (one handle, bound to one device).
pub(crate) trait BlasBackend: Send {
    fn describe(&self) -> String;
    fn gemm(&mut self, stream: Raw, g: &GemmCall) -> Result<()>;
}

/// A BLAS handle for one device. Calls are serialised (vendor handles are not re-entrant).
pub struct Blas {
    dev: Device,
    inner: Mutex<Box<dyn BlasBackend>>,
    what: String,
}

impl std::fmt::Debug for Blas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Blas({})", self.what)
    }
}

/// Load the vendor BLAS library for `vendor` without creating a handle (no device needed). Returns
/// the path it was loaded from, or an error naming every candidate tried.
pub fn probe(vendor: Vendor) -> Result<String> {
    match vendor {
        Vendor::Nvidia => super::cuda::cublas::probe(),
        Vendor::Amd => super::hip::hipblas::probe(),
    }
}

impl Blas {
    /// A handle on `dev` (loads cuBLAS or hipBLAS on first use).
    pub fn new(dev: &Device) -> Result<Blas> {
        let b: Box<dyn BlasBackend> = match dev.target().backend_vendor() {
            Vendor::Nvidia => Box::new(super::cuda::cublas::CublasHandle::new(dev.ordinal())?),
            Vendor::Amd => Box::new(super::hip::hipblas::HipblasHandle::new(dev.ordinal())?),
        };
        let what = b.describe();
        Ok(Blas {
            dev: dev.clone(),
            inner: Mutex::new(b),
            what,
        })
    }

    /// The device the handle is bound to.
    pub fn device(&self) -> &Device {
        &self.dev
    }

    /// Library name, version and path.
    pub fn describe(&self) -> &str {
        &self.what
    }

    /// Row-major y[M, N] = x[M, K] · w[N, K]ᵀ (a linear layer without bias): inputs of `in_type`,
    /// output of `out_type`, f32 accumulation. Pointers are device addresses of at least M·K, N·K and
    /// M·N elements (the caller checks the buffers).
    #[allow(clippy::too_many_arguments)]
    pub fn linear(
        &self,
        stream: &Stream,
        m: usize,
        n: usize,
        k: usize,
        x: u64,
        w: u64,
        in_type: BlasType,
        y: u64,
        out_type: BlasType,
    ) -> Result<()> {
        let dims = [m, n, k];
        if dims.iter().any(|&d| d == 0 || d > i32::MAX as usize) {
            return Err(Error::op(
                "blas",
                format!("GEMM dims M={m} N={n} K={k} must be in 1..2^31"),
            ));
        }
        // Column-major view: yᵀ[N, M] = w[N, K]·xᵀ → C(N×M) = op(A)=Aᵀ with A = w as K×N (ld K), B = xᵀ as K×M (ld K).
        let g = GemmCall {
            trans_a: true,
            trans_b: false,
            m: n as i32,
            n: m as i32,
            k: k as i32,
            alpha: 1.0,
            a: w,
            a_type: in_type,
            lda: k as i32,
            b: x,
            b_type: in_type,
            ldb: k as i32,
            beta: 0.0,
            c: y,
            c_type: out_type,
            ldc: n as i32,
        };
        let mut h = self
            .inner
            .lock()
            .map_err(|_| Error::op("blas", "handle mutex poisoned"))?;
        h.gemm(stream.raw(), &g)
    }
}
