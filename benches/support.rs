//! What the binaries `linear_head` and `matmul` share: their command line
//! and their inputs' generator.

use std::collections::HashMap;
use std::process;
use std::str::FromStr;

use ndarray::Array2;

/// `--key value` pairs, each key among the ones the binary knows.
pub struct Args {
    values: HashMap<String, String>,
    usage: &'static str,
}

impl Args {
    /// The command line, or the usage and exit (`--help`, an unknown key, a
    /// key without a value).
    pub fn parse(usage: &'static str, keys: &[&str]) -> Args {
        let mut values = HashMap::new();
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            let key = arg.strip_prefix("--").unwrap_or("");
            if !keys.contains(&key) {
                let code = if arg == "--help" || arg == "-h" { 0 } else { 2 };
                if code != 0 {
                    eprintln!("unknown argument {arg:?}");
                }
                eprintln!("{usage}");
                process::exit(code);
            }
            let Some(value) = it.next() else {
                eprintln!("{arg} needs a value\n{usage}");
                process::exit(2);
            };
            values.insert(key.to_owned(), value);
        }
        Args { values, usage }
    }

    /// The value of `--key`, or `default`.
    pub fn get<T: FromStr>(&self, key: &str, default: T) -> T {
        match self.values.get(key) {
            None => default,
            Some(v) => v.parse().unwrap_or_else(|_| {
                eprintln!("--{key} {v:?}: not a valid value\n{}", self.usage);
                process::exit(2);
            }),
        }
    }
}

/// Uses `threads` threads in rayon's global pool (the products' and the
/// head's), as `RAYON_NUM_THREADS` would.
pub fn use_threads(threads: usize) {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .expect("the global pool is built once, first");
}

/// xorshift64*, seeded as the criterion benchmarks' (`softmax.rs`).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `(rows, cols)` values uniform in `[lo, hi)`, generated in place (no
/// temporary the size of the array).
pub fn uniform(rows: usize, cols: usize, lo: f64, hi: f64, seed: u64) -> Array2<f32> {
    let mut rng = Rng::new(seed);
    Array2::from_shape_simple_fn((rows, cols), || (lo + (hi - lo) * rng.unit()) as f32)
}

/// The median of `samples` (sorted in place); NaN for none.
pub fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    match samples.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => samples[n / 2],
        n => (samples[n / 2 - 1] + samples[n / 2]) / 2.0,
    }
}

/// `[a, b, c]` with each value in Rust's shortest round-trip form.
pub fn json_list(values: &[f64]) -> String {
    let items: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    format!("[{}]", items.join(", "))
}
