//! Attention benchmarks: RoPE + KV append, decode (flash-decoding) and prefill, against the copy
//! ceiling and torch (tools/peer_attention.py) in the same run. Prints one row per case.

#[path = "common/mod.rs"]
mod common;

use common::*;
use half::{bf16, f16};
use rocmforge::gpu::Device;
use rocmforge::ops::attention::rope::{Rope, RopeStyle};
use rocmforge::ops::attention::{
    decode, kv_cache, prefill, AttnParams, Batch, PagedCache, PagedLayout,
};
use rocmforge::ops::Element;
use rocmforge::Result;

fn rnd(n: usize, seed: u64) -> Vec<bf16> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            bf16::from_f32(((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0)
        })
        .collect()
}

/// A filled cache of `nseq` sequences of `ctx` tokens, pages in order.
fn rnd_t<T: Element>(n: usize, seed: u64) -> Vec<T> {
    rnd(n, seed)
        .into_iter()
        .map(|x| T::from_f32(x.to_f32()))
        .collect()
}

fn cache<T: Element>(
    dev: &Device,
    nseq: usize,
    ctx: usize,
    page: usize,
    hkv: usize,
    hd: usize,
    seed: u64,
) -> Result<PagedCache<T>> {
    let max_pages = ctx.div_ceil(page);
    let l = PagedLayout {
        num_pages: nseq * max_pages,
        page_size: page,
        n_kv_heads: hkv,
        head_dim: hd,
        max_pages,
    };
    let bt: Vec<i32> = (0..(nseq * max_pages) as i32).collect();
    let mut c = PagedCache::new(dev, l, &bt)?;
    c.k.copy_from_host(&rnd_t::<T>(l.elements(), seed))?;
    c.v.copy_from_host(&rnd_t::<T>(l.elements(), seed + 1))?;
    Ok(c)
}

/// Median ms of one prefill over a fresh cache of T (used for the bf16 vs f16 cost of the hi/lo P split).
fn prefill_ms<T: Element>(
    dev: &Device,
    b: usize,
    h: usize,
    sq: usize,
    hd: usize,
    causal: bool,
    path: &str,
) -> Result<f64> {
    let s = dev.default_stream();
    let c = cache::<T>(dev, b, sq, 64, h, hd, 30)?;
    let cu: Vec<i32> = (0..=b as i32).map(|i| i * sq as i32).collect();
    let batch = Batch::new(dev, &cu, &vec![sq as i32; b])?;
    let q = dev.upload(&rnd_t::<T>(b * sq * h * hd, 7))?;
    let mut out = dev.alloc::<T>(q.len())?;
    let p = AttnParams::new(hd, causal);
    time_ms(dev, 1, 5, |_| {
        prefill::prefill(dev, &s, &q, &c, &batch, h, &mut out, &p, Some(path))
    })
}

fn peer(args: &[&str]) -> serde_json::Value {
    let a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    run_peer("peer_attention.py", &a).unwrap_or_else(|e| serde_json::json!({ "error": e }))
}

fn main() -> Result<()> {
    let dev = Device::shared()?;
    let s = dev.default_stream();
    let copy = copy_bandwidth_gbs(&dev)?;
    println!(
        "device {} ({}), copy ceiling {copy:.0} GB/s",
        dev.target().name,
        dev.target().arch
    );
    println!(
        "{:<44} {:>10} {:>12} {:>8} {:>10}",
        "op / shape", "ms", "GB/s|TF/s", "% ceil", "vs torch"
    );

    // ---- RoPE(K) + append, bf16, 8 kv heads, hd128, page 16: 4 sequences x 4096 new tokens
    {
        let (hkv, hd, page, nseq, n) = (8usize, 128usize, 16usize, 4usize, 4096usize);
        let mut c = cache::<bf16>(&dev, nseq, n, page, hkv, hd, 1)?;
        let tokens = nseq * n;
        let kn = dev.upload(&rnd(tokens * hkv * hd, 3))?;
        let vn = dev.upload(&rnd(tokens * hkv * hd, 4))?;
        let pos: Vec<i32> = (0..nseq).flat_map(|_| 0..n as i32).collect();
        let cu: Vec<i32> = (0..=nseq as i32).map(|b| b * n as i32).collect();
        let ctx = vec![0i32; nseq];
        let (dp, dcu, dctx) = (dev.upload(&pos)?, dev.upload(&cu)?, dev.upload(&ctx)?);
        let r = Rope {
            style: RopeStyle::Neox,
            n_rot: hd,
            base: 500000.0,
        };
        for rope in [None, Some(r)] {
            let a = kv_cache::Append {
                k_new: &kn,
                v_new: &vn,
                pos: &dp,
                cu_new: &dcu,
                ctx_lens: &dctx,
                cu_new_host: &cu,
                ctx_lens_host: &ctx,
            };
            let ms = time_ms(&dev, 3, 20, |_| {
                kv_cache::append(&dev, &s, &mut c, &a, rope.as_ref())
            })?;
            let bytes = 4.0 * (tokens * hkv * hd * 2) as f64;
            let gbs = bytes / ms / 1e6;
            let name = format!(
                "kv_append{} 4x4096 hkv8 hd128 p16",
                if rope.is_some() { "+rope" } else { "" }
            );
            println!(
                "{name:<44} {ms:>10.3} {gbs:>12.0} {:>7.1}% {:>10}",
                100.0 * gbs / copy,
                "-"
            );
        }
    }

    // ---- decode, bf16, GQA 32/8, hd128, page 16
    for (b, ctx) in [(1usize, 4096usize), (1, 32768), (16, 4096), (64, 2048)] {
        let (hq, hkv, hd) = (32usize, 8usize, 128usize);
        let kv_bytes = 2 * b * hkv * ctx * hd * 2;
        let reps = (200_000_000usize.div_ceil(kv_bytes)).clamp(1, 8);
        let caches: Vec<_> = (0..reps)
            .map(|i| cache::<bf16>(&dev, b, ctx, 16, hkv, hd, 10 + 2 * i as u64))
            .collect::<Result<_>>()?;
        let cu: Vec<i32> = (0..=b as i32).collect();
        let batch = Batch::new(&dev, &cu, &vec![ctx as i32; b])?;
        let q = dev.upload(&rnd(b * hq * hd, 5))?;
        let mut out = dev.alloc::<bf16>(b * hq * hd)?;
        let mut plan = decode::DecodePlan::new(&dev, &batch, hq, hkv, hd)?;
        let p = AttnParams::new(hd, true);
        let ms = time_ms(&dev, 3, 50, |i| {
            decode::decode(
                &dev,
                &s,
                &q,
                &caches[i % reps],
                &batch,
                &mut plan,
                &mut out,
                &p,
            )
        })?;
        let gbs = kv_bytes as f64 / ms / 1e6;
        let pr = peer(&[
            "--mode",
            "decode",
            "--b",
            &b.to_string(),
            "--hq",
            "32",
            "--hkv",
            "8",
            "--ctx",
            &ctx.to_string(),
            "--hd",
            "128",
        ]);
        let ratio = pr["sdpa_ms"]
            .as_f64()
            .map(|t| format!("{:.2}x", t / ms))
            .unwrap_or_else(|| format!("{}", pr));
        println!(
            "{:<44} {ms:>10.4} {gbs:>12.0} {:>7.1}% {ratio:>10}  (splits {})",
            format!("decode B={b} ctx={ctx} 32/8 hd128 p16"),
            100.0 * gbs / copy,
            plan.splits
        );
    }

    // ---- prefill, bf16, MHA, page 64, vs torch SDPA flash / cuDNN
    let path = prefill::native_path(dev.target());
    for (b, h, sq, hd, causal) in [
        (4usize, 32usize, 4096usize, 128usize, true),
        (4, 32, 4096, 128, false),
        (8, 32, 2048, 64, true),
        (8, 32, 2048, 64, false),
    ] {
        let ms = prefill_ms::<bf16>(&dev, b, h, sq, hd, causal, path)?;
        let flops = 4.0 * (b * h * sq * sq * hd) as f64 * if causal { 0.5 } else { 1.0 };
        let tf = flops / ms / 1e9;
        let pr = peer(&[
            "--mode",
            "prefill",
            "--b",
            &b.to_string(),
            "--h",
            &h.to_string(),
            "--s",
            &sq.to_string(),
            "--hd",
            &hd.to_string(),
            "--causal",
            if causal { "1" } else { "0" },
        ]);
        let r = |k: &str| {
            pr[k]
                .as_f64()
                .map(|t| format!("{:.2}x", t / ms))
                .unwrap_or("n/a".into())
        };
        println!(
            "{:<44} {ms:>10.3} {tf:>12.1} {:>8} {:>10}  (cuDNN {}; torch flash {:.3} ms, cuDNN {:.3} ms) {}",
            format!("prefill {path} B={b} H={h} S={sq} hd{hd} {}", if causal { "causal" } else { "full" }),
            "-",
            r("flash_ms"),
            r("cudnn_ms"),
            pr["flash_ms"].as_f64().unwrap_or(f64::NAN),
            pr["cudnn_ms"].as_f64().unwrap_or(f64::NAN),
            pr.get("error").map(|e| e.to_string()).unwrap_or_default()
        );
    }

    // ---- independent check against torch SDPA (f64) on one shape: ours and torch's bf16 error
    {
        // f16 keeps P as one f16 mma operand; bf16 splits P into hi + lo (two mma for P.V): the gap
        // between these two rows is the price of bf16 accuracy.
        let (b, h, sq, hd) = (4usize, 32usize, 4096usize, 128usize);
        let flops = 4.0 * (b * h * sq * sq * hd) as f64 * 0.5;
        for (name, ms) in [
            ("bf16", prefill_ms::<bf16>(&dev, b, h, sq, hd, true, path)?),
            ("f16", prefill_ms::<f16>(&dev, b, h, sq, hd, true, path)?),
        ] {
            println!(
                "{:<44} {ms:>10.3} {:>12.1}",
                format!("prefill {path} {name} B={b} H={h} S={sq} hd{hd} causal"),
                flops / ms / 1e9
            );
        }
    }

    {
        let (sq, h, hkv, hd) = (1000usize, 8usize, 2usize, 128usize);
        let c = cache::<bf16>(&dev, 1, sq, 16, hkv, hd, 40)?;
        let batch = Batch::new(&dev, &[0, sq as i32], &[sq as i32])?;
        let qh = rnd(sq * h * hd, 9);
        let q = dev.upload(&qh)?;
        let mut out = dev.alloc::<bf16>(q.len())?;
        prefill::prefill(
            &dev,
            &s,
            &q,
            &c,
            &batch,
            h,
            &mut out,
            &AttnParams::new(hd, true),
            None,
        )?;
        let dir = std::env::temp_dir().join("rf_attn_check");
        std::fs::create_dir_all(&dir).map_err(|e| rocmforge::Error::io(&dir, e))?;
        let w = |n: &str, v: &[bf16]| {
            let f: Vec<f32> = v.iter().map(|x| x.to_f32()).collect();
            std::fs::write(dir.join(format!("{n}.bin")), bytemuck::cast_slice(&f))
                .map_err(|e| rocmforge::Error::io(dir.join(n), e))
        };
        w("q", &qh)?;
        // the cache is [page][hkv][P][hd]: gather to [s][hkv][hd] for torch
        let bt: Vec<i32> = (0..c.layout.max_pages as i32).collect();
        let gather = |v: Vec<bf16>| -> Vec<bf16> {
            (0..sq)
                .flat_map(|t| {
                    (0..hkv)
                        .flat_map(|kh| v[c.layout.token_offset(&bt, 0, kh, t)..][..hd].to_vec())
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        w("k", &gather(c.k.to_vec()?))?;
        w("v", &gather(c.v.to_vec()?))?;
        w("o", &out.to_vec()?)?;
        std::fs::write(
            dir.join("meta.json"),
            format!("{{\"s\":{sq},\"h\":{h},\"hkv\":{hkv},\"hd\":{hd},\"causal\":1,\"page\":16}}"),
        )
        .map_err(|e| rocmforge::Error::io(&dir, e))?;
        let pr = peer(&["--mode", "check", "--dir", &dir.to_string_lossy()]);
        println!("check vs torch SDPA (f64) S={sq} H={h}/{hkv} hd{hd} causal: {pr}");
    }
    Ok(())
}
