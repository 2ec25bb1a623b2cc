//! The CPU backend: the forward pass in f32 on the host, weights dequantized once at load by the
//! quant layer's CPU reference decoders, matrix products through `matrixmultiply` split over rayon
//! threads, attention over the same paged layout the GPU kernels read. It is the reference the GPU
//! backend is checked against and the fallback when there is no GPU.

use super::arch::Activation;
use super::batch::ForwardBatch;
use super::config::{layer_tensor, ModelConfig};
use super::{Backend, MemoryReport, StepResult};
use crate::error::{Error, Result};
use crate::gguf::GgufFile;
use crate::ops::attention::rope::{rotate_row, Rope};
use rayon::prelude::*;

struct Layer {
    attn_norm: Vec<f32>,
    wq: Vec<f32>,
    wk: Vec<f32>,
    wv: Vec<f32>,
    wo: Vec<f32>,
    bias: Option<[Vec<f32>; 3]>,
    qk_norm: Option<[Vec<f32>; 2]>,
    post_norms: Option<[Vec<f32>; 2]>,
    ffn_norm: Vec<f32>,
    wg: Vec<f32>,
    wu: Vec<f32>,
    wd: Vec<f32>,
}

/// The CPU backend.
pub struct CpuBackend {
    cfg: ModelConfig,
    emb: Vec<f32>,
    out: Option<Vec<f32>>,
    out_norm: Vec<f32>,
    layers: Vec<Layer>,
    page_size: usize,
    num_pages: usize,
    /// Per layer: `[page][kv_head][page_size][head_dim]`.
    k_cache: Vec<Vec<f32>>,
    v_cache: Vec<Vec<f32>>,
}

fn load(g: &GgufFile, name: &str) -> Result<Vec<f32>> {
    g.tensor(name)?.dequantize_f32()
}

impl CpuBackend {
    pub fn new(
        g: &GgufFile,
        cfg: &ModelConfig,
        num_pages: usize,
        page_size: usize,
    ) -> Result<Self> {
        let layers = (0..cfg.n_layers)
            .into_par_iter()
            .map(|l| -> Result<Layer> {
                let t = |n: &str| load(g, &layer_tensor(l, n));
                Ok(Layer {
                    attn_norm: t("attn_norm.weight")?,
                    wq: t("attn_q.weight")?,
                    wk: t("attn_k.weight")?,
                    wv: t("attn_v.weight")?,
                    wo: t("attn_output.weight")?,
                    bias: if cfg.qkv_bias {
                        Some([t("attn_q.bias")?, t("attn_k.bias")?, t("attn_v.bias")?])
                    } else {
                        None
                    },
                    qk_norm: if cfg.qk_norm {
                        Some([t("attn_q_norm.weight")?, t("attn_k_norm.weight")?])
                    } else {
                        None
                    },
                    post_norms: if cfg.post_norms {
                        Some([t("post_attention_norm.weight")?, t("post_ffw_norm.weight")?])
                    } else {
                        None
                    },
                    ffn_norm: t("ffn_norm.weight")?,
                    wg: t("ffn_gate.weight")?,
                    wu: t("ffn_up.weight")?,
                    wd: t("ffn_down.weight")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let cache = num_pages * cfg.n_kv_heads * page_size * cfg.head_dim;
        Ok(CpuBackend {
            cfg: cfg.clone(),
            emb: load(g, "token_embd.weight")?,
            out: if cfg.tied_output {
                None
            } else {
                Some(load(g, "output.weight")?)
            },
            out_norm: load(g, "output_norm.weight")?,
            layers,
            page_size,
            num_pages,
            k_cache: vec![vec![0.0; cache]; cfg.n_layers],
            v_cache: vec![vec![0.0; cache]; cfg.n_layers],
        })
    }

    fn weight_bytes(&self) -> usize {
        let l: usize = self
            .layers
            .iter()
            .map(|l| {
                let mut n = l.attn_norm.len()
                    + l.wq.len()
                    + l.wk.len()
                    + l.wv.len()
                    + l.wo.len()
                    + l.ffn_norm.len()
                    + l.wg.len()
                    + l.wu.len()
                    + l.wd.len();
                for v in l.bias.iter().flatten() {
                    n += v.len();
                }
                for v in l
                    .qk_norm
                    .iter()
                    .flatten()
                    .chain(l.post_norms.iter().flatten())
                {
                    n += v.len();
                }
                n
            })
            .sum();
        (l + self.emb.len() + self.out_norm.len() + self.out.as_ref().map_or(0, |o| o.len())) * 4
    }

    /// Offset of (page, kv head, slot) in a layer's cache.
    fn slot(&self, page: usize, h: usize, row: usize) -> usize {
        ((page * self.cfg.n_kv_heads + h) * self.page_size + row) * self.cfg.head_dim
    }
}

/// Raw pointer that rayon tasks may share to write disjoint parts of one output.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// Dot product with 8 independent accumulators (so the compiler can vectorize it).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// y[m, n] = x[m, k] · w[n, k]ᵀ, split over output columns. Few rows (decode) read W once with
/// dot products; more rows go through a packed GEMM.
pub fn matmul(x: &[f32], m: usize, k: usize, w: &[f32], n: usize) -> Vec<f32> {
    let mut y = vec![0f32; m * n];
    if m == 0 || n == 0 {
        return y;
    }
    if m <= 4 {
        // yt[j][i] = w_j · x_i, one task per block of W rows, then transposed into y
        let mut yt = vec![0f32; n * m];
        yt.par_chunks_mut(64 * m).enumerate().for_each(|(c, out)| {
            for (r, o) in out.chunks_mut(m).enumerate() {
                let wr = &w[(c * 64 + r) * k..][..k];
                for (i, v) in o.iter_mut().enumerate() {
                    *v = dot(wr, &x[i * k..][..k]);
                }
            }
        });
        for j in 0..n {
            for i in 0..m {
                y[i * n + j] = yt[j * m + i];
            }
        }
        return y;
    }
    debug_assert!(x.len() >= m * k && w.len() >= n * k);
    let threads = rayon::current_num_threads().max(1);
    let chunk = n.div_ceil(threads * 4).max(32);
    let yp = SendPtr(y.as_mut_ptr());
    (0..n.div_ceil(chunk)).into_par_iter().for_each(|c| {
        let yp = yp;
        let n0 = c * chunk;
        let nn = chunk.min(n - n0);
        // SAFETY: x is m×k (row stride k), the w rows n0..n0+nn are in bounds (n×k), and each task
        // writes only columns n0..n0+nn of y (m×n, row stride n): disjoint between tasks.
        unsafe {
            matrixmultiply::sgemm(
                m,
                k,
                nn,
                1.0,
                x.as_ptr(),
                k as isize,
                1,
                w.as_ptr().add(n0 * k),
                1,
                k as isize,
                0.0,
                yp.0.add(n0),
                n as isize,
                1,
            );
        }
    });
    y
}

/// RMSNorm of every `dim`-row of `x` in place: x / sqrt(mean(x²) + eps) · w.
pub fn rms_norm(x: &mut [f32], w: &[f32], dim: usize, eps: f32) {
    x.par_chunks_mut(dim).for_each(|row| {
        let ms = row.iter().map(|v| v * v).sum::<f32>() / dim as f32;
        let r = 1.0 / (ms + eps).sqrt();
        for (v, g) in row.iter_mut().zip(w) {
            *v = *v * r * g;
        }
    });
}

fn add_bias(x: &mut [f32], b: &[f32]) {
    for row in x.chunks_mut(b.len()) {
        for (v, c) in row.iter_mut().zip(b) {
            *v += c;
        }
    }
}

fn gelu_tanh(a: f32) -> f32 {
    0.5 * a * (1.0 + ((2.0 / std::f32::consts::PI).sqrt() * (a + 0.044715 * a * a * a)).tanh())
}

fn softcap(x: f32, cap: f32) -> f32 {
    if cap > 0.0 {
        cap * (x / cap).tanh()
    } else {
        x
    }
}

impl CpuBackend {
    fn layer(&mut self, li: usize, x: &mut [f32], b: &ForwardBatch, pos: &[i32], seq: &[usize]) {
        let c = &self.cfg;
        let (t, d, hd) = (b.total(), c.d_model, c.head_dim);
        let (hq, hk) = (c.n_heads, c.n_kv_heads);
        let lc = c.layers[li];
        let l = &self.layers[li];
        let mut h = x.to_vec();
        rms_norm(&mut h, &l.attn_norm, d, c.rms_eps);
        let mut q = matmul(&h, t, d, &l.wq, hq * hd);
        let mut k = matmul(&h, t, d, &l.wk, hk * hd);
        let mut v = matmul(&h, t, d, &l.wv, hk * hd);
        if let Some([bq, bk, bv]) = &l.bias {
            add_bias(&mut q, bq);
            add_bias(&mut k, bk);
            add_bias(&mut v, bv);
        }
        if let Some([nq, nk]) = &l.qk_norm {
            rms_norm(&mut q, nq, hd, c.rms_eps);
            rms_norm(&mut k, nk, hd, c.rms_eps);
        }
        let rope = Rope {
            style: c.rope_style,
            n_rot: c.n_rot,
            base: lc.rope_base,
        };
        q.par_chunks_mut(hq * hd)
            .zip(pos.par_iter())
            .for_each(|(row, &p)| {
                for head in row.chunks_mut(hd) {
                    rotate_row(head, p, &rope);
                }
            });
        k.par_chunks_mut(hk * hd)
            .zip(pos.par_iter())
            .for_each(|(row, &p)| {
                for head in row.chunks_mut(hd) {
                    rotate_row(head, p, &rope);
                }
            });
        // write the new K/V rows into their pages
        for i in 0..t {
            let (s, p) = (seq[i], pos[i] as usize);
            let page = b.block_tables[s * b.max_pages + p / self.page_size] as usize;
            for kh in 0..hk {
                let o = self.slot(page, kh, p % self.page_size);
                self.k_cache[li][o..o + hd].copy_from_slice(&k[(i * hk + kh) * hd..][..hd]);
                self.v_cache[li][o..o + hd].copy_from_slice(&v[(i * hk + kh) * hd..][..hd]);
            }
        }
        // attention, one task per query token
        let (kc, vc) = (&self.k_cache[li], &self.v_cache[li]);
        let group = c.group();
        let mut attn = vec![0f32; t * hq * hd];
        attn.par_chunks_mut(hq * hd)
            .enumerate()
            .for_each(|(i, out)| {
                let (s, p) = (seq[i], pos[i] as usize);
                let lo = if lc.window > 0 {
                    (p + 1).saturating_sub(lc.window)
                } else {
                    0
                };
                let table = &b.block_tables[s * b.max_pages..][..b.max_pages];
                let mut scores = vec![0f32; p + 1 - lo];
                for head in 0..hq {
                    let kh = head / group;
                    let qr = &q[(i * hq + head) * hd..][..hd];
                    let mut mx = f32::NEG_INFINITY;
                    for (j, sc) in (lo..=p).zip(scores.iter_mut()) {
                        let o =
                            self.slot(table[j / self.page_size] as usize, kh, j % self.page_size);
                        let dot = dot(qr, &kc[o..o + hd]);
                        *sc = softcap(dot * c.attn_scale, c.attn_softcap);
                        mx = mx.max(*sc);
                    }
                    let mut sum = 0f32;
                    for sc in scores.iter_mut() {
                        *sc = (*sc - mx).exp();
                        sum += *sc;
                    }
                    let orow = &mut out[head * hd..][..hd];
                    for (j, &w) in (lo..=p).zip(scores.iter()) {
                        let o =
                            self.slot(table[j / self.page_size] as usize, kh, j % self.page_size);
                        let w = w / sum;
                        for (a, vv) in orow.iter_mut().zip(&vc[o..o + hd]) {
                            *a += w * vv;
                        }
                    }
                }
            });
        let mut o = matmul(&attn, t, hq * hd, &l.wo, d);
        if let Some([pa, _]) = &l.post_norms {
            rms_norm(&mut o, pa, d, c.rms_eps);
        }
        for (a, b) in x.iter_mut().zip(&o) {
            *a += b;
        }
        // feed-forward
        let mut h = x.to_vec();
        rms_norm(&mut h, &l.ffn_norm, d, c.rms_eps);
        let mut gt = matmul(&h, t, d, &l.wg, c.d_ff);
        let up = matmul(&h, t, d, &l.wu, c.d_ff);
        let act = c.activation;
        gt.par_iter_mut().zip(up.par_iter()).for_each(|(g, u)| {
            *g = match act {
                Activation::Silu => *g / (1.0 + (-*g).exp()) * u,
                Activation::GeluTanh => gelu_tanh(*g) * u,
            }
        });
        let mut f = matmul(&gt, t, c.d_ff, &l.wd, d);
        if let Some([_, pf]) = &l.post_norms {
            rms_norm(&mut f, pf, d, c.rms_eps);
        }
        for (a, b) in x.iter_mut().zip(&f) {
            *a += b;
        }
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> String {
        format!("cpu ({} threads)", rayon::current_num_threads())
    }

    fn memory(&self) -> MemoryReport {
        MemoryReport {
            weights: self.weight_bytes(),
            kv: (self.k_cache.iter().map(|c| c.len()).sum::<usize>() * 2) * 4,
            scratch: 0,
            free: None,
        }
    }

    fn forward(&mut self, b: &ForwardBatch, want_logits: bool) -> Result<StepResult> {
        b.validate(self.cfg.vocab_size, self.page_size, self.num_pages)?;
        let (d, vocab) = (self.cfg.d_model, self.cfg.vocab_size);
        let t = b.total();
        let pos = b.positions();
        let seq = b.seq_of_token();
        let mut x = vec![0f32; t * d];
        for (row, &tok) in x.chunks_mut(d).zip(&b.tokens) {
            let e = &self.emb[tok as usize * d..][..d];
            for (a, v) in row.iter_mut().zip(e) {
                *a = v * self.cfg.embed_scale;
            }
        }
        for li in 0..self.cfg.n_layers {
            self.layer(li, &mut x, b, &pos, &seq);
        }
        let mut h: Vec<f32> = b
            .out_rows
            .iter()
            .flat_map(|&r| x[r * d..(r + 1) * d].iter().copied())
            .collect();
        rms_norm(&mut h, &self.out_norm, d, self.cfg.rms_eps);
        let w = self.out.as_ref().unwrap_or(&self.emb);
        let mut logits = matmul(&h, b.out_rows.len(), d, w, vocab);
        if self.cfg.final_softcap > 0.0 {
            let cap = self.cfg.final_softcap;
            logits.par_iter_mut().for_each(|v| *v = softcap(*v, cap));
        }
        if logits.iter().any(|v| !v.is_finite()) {
            return Err(Error::Model(
                "non-finite logits from the CPU forward pass".into(),
            ));
        }
        let argmax = logits.chunks(vocab).map(|r| super::argmax(r)).collect();
        Ok(StepResult {
            logits: if want_logits { logits } else { Vec::new() },
            argmax,
        })
    }
}
