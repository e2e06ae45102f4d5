//! The UCI digits: parsing, the fixed stratified split, and the three
//! training regimes (balanced, long-tailed, noisy labels).

use std::io::Read;
use std::path::Path;

use ndarray::{Array1, Array2, Axis};

use super::rng::Rng;

/// Digits 0..=9.
pub const CLASSES: usize = 10;
/// An 8x8 image.
pub const PIXELS: usize = 64;
/// Pixel values run 0..=16 (counts of set pixels in 4x4 blocks of a 32x32
/// bitmap).
pub const MAX_PIXEL: u8 = 16;

/// Images and their labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Digits {
    /// `(N, 64)` pixel values `0..=16` as floats.
    pub pixels: Array2<f32>,
    /// `N` labels in `0..10`.
    pub labels: Vec<usize>,
}

impl Digits {
    /// The number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
}

/// Parses lines of 64 pixel values then the label, comma separated, no
/// header. Blank lines are skipped; anything else malformed is an error
/// naming the line.
pub fn parse_digits(text: &str) -> Result<Digits, String> {
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != PIXELS + 1 {
            return Err(format!(
                "line {}: expected {} comma-separated values, got {}",
                i + 1,
                PIXELS + 1,
                fields.len()
            ));
        }
        for (j, f) in fields[..PIXELS].iter().enumerate() {
            match f.trim().parse::<u8>() {
                Ok(v) if v <= MAX_PIXEL => pixels.push(f32::from(v)),
                _ => {
                    return Err(format!(
                        "line {}, pixel {j}: expected an integer 0..={MAX_PIXEL}, got {f:?}",
                        i + 1
                    ));
                }
            }
        }
        let label = fields[PIXELS].trim();
        match label.parse::<usize>() {
            Ok(y) if y < CLASSES => labels.push(y),
            _ => {
                return Err(format!(
                    "line {}: expected a label 0..={}, got {label:?}",
                    i + 1,
                    CLASSES - 1
                ));
            }
        }
    }
    if labels.is_empty() {
        return Err("no images".to_string());
    }
    let pixels = Array2::from_shape_vec((labels.len(), PIXELS), pixels)
        .map_err(|e| format!("internal shape error: {e}"))?;
    Ok(Digits { pixels, labels })
}

/// Reads and parses the gzip-compressed CSV.
pub fn read_digits_gz(path: &Path) -> Result<Digits, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut text)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    parse_digits(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// How many labels of each class.
pub fn class_counts(labels: &[usize], classes: usize) -> Vec<usize> {
    let mut counts = vec![0; classes];
    for &y in labels {
        counts[y] += 1;
    }
    counts
}

/// Splits indices `0..labels.len()` into (train, test) so that every class
/// puts `round(test_fraction * n_class)` of its images in the test split.
/// Both lists are sorted.
pub fn stratified_split(
    labels: &[usize],
    classes: usize,
    test_fraction: f64,
    rng: &mut Rng,
) -> (Vec<usize>, Vec<usize>) {
    let mut train = Vec::new();
    let mut test = Vec::new();
    for c in 0..classes {
        let mut members: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == c).collect();
        rng.shuffle(&mut members);
        let n_test = (test_fraction * members.len() as f64).round() as usize;
        test.extend_from_slice(&members[..n_test]);
        train.extend_from_slice(&members[n_test..]);
    }
    train.sort_unstable();
    test.sort_unstable();
    (train, test)
}

/// Class sizes falling exponentially from `largest` (rank 0) to
/// `largest / ratio` (rank `classes - 1`), rounded, at least 1:
/// `n_r = round(largest * ratio^(-r / (classes - 1)))`.
pub fn long_tail_counts(largest: usize, ratio: f64, classes: usize) -> Vec<usize> {
    let last = classes.saturating_sub(1).max(1) as f64;
    (0..classes)
        .map(|r| {
            let n = largest as f64 * ratio.powf(-(r as f64) / last);
            (n.round() as usize).max(1)
        })
        .collect()
}

/// Keeps, of the images in `pool`, `counts[rank[c]]` randomly chosen ones of
/// each class `c` (all of them if the class has fewer). Returns sorted
/// indices.
pub fn long_tail_subsample(
    pool: &[usize],
    labels: &[usize],
    counts: &[usize],
    rank: &[usize],
    rng: &mut Rng,
) -> Vec<usize> {
    let mut kept = Vec::new();
    for (c, &r) in rank.iter().enumerate() {
        let mut members: Vec<usize> = pool.iter().copied().filter(|&i| labels[i] == c).collect();
        rng.shuffle(&mut members);
        members.truncate(counts[r]);
        kept.extend(members);
    }
    kept.sort_unstable();
    kept
}

/// Symmetric label noise: exactly `round(rate * n)` labels, chosen at
/// random, are replaced by a different class drawn uniformly from the other
/// `classes - 1`. Returns the new labels.
pub fn symmetric_noise(labels: &[usize], classes: usize, rate: f64, rng: &mut Rng) -> Vec<usize> {
    let mut noisy = labels.to_vec();
    let mut order: Vec<usize> = (0..labels.len()).collect();
    rng.shuffle(&mut order);
    let flips = (rate * labels.len() as f64).round() as usize;
    for &i in &order[..flips] {
        noisy[i] = (labels[i] + 1 + rng.below(classes - 1)) % classes;
    }
    noisy
}

/// Rows `idx` of `x`.
pub fn rows(x: &Array2<f32>, idx: &[usize]) -> Array2<f32> {
    x.select(Axis(0), idx)
}

/// Standardizes every column with the mean and standard deviation of
/// `train` (a constant column gets divisor 1), applied to `train` and to
/// each of `others`.
pub fn standardize(train: &mut Array2<f32>, others: &mut [&mut Array2<f32>]) {
    let n = train.nrows().max(1) as f32;
    let mean: Array1<f32> = train.sum_axis(Axis(0)) / n;
    let var: Array1<f32> = train
        .rows()
        .into_iter()
        .fold(Array1::zeros(train.ncols()), |acc, r| {
            acc + (&r - &mean).mapv(|d| d * d)
        })
        / n;
    let std = var.mapv(|v| if v > 1e-12 { v.sqrt() } else { 1.0 });
    for x in std::iter::once(train).chain(others.iter_mut().map(|x| &mut **x)) {
        *x -= &mean;
        *x /= &std;
    }
}

/// Two images side by side, one 8 x 16 image, labelled with the set of the
/// digits shown (one label when both show the same digit). Every image of
/// `pool` stands in `per_image` composites (as often left as right when
/// `per_image` is even), its partners drawn at random. Returns the `(M,
/// 128)` pixels, row by row of the wide image, and the `(M, classes)` 0/1
/// label sets.
pub fn side_by_side(
    digits: &Digits,
    pool: &[usize],
    per_image: usize,
    classes: usize,
    rng: &mut Rng,
) -> (Array2<f32>, Array2<f32>) {
    let mut slots: Vec<usize> = (0..per_image).flat_map(|_| pool.iter().copied()).collect();
    rng.shuffle(&mut slots);
    let pairs: Vec<(usize, usize)> = slots.chunks_exact(2).map(|p| (p[0], p[1])).collect();
    const SIDE: usize = 8;
    let mut x = Array2::zeros((pairs.len(), 2 * PIXELS));
    let mut t = Array2::zeros((pairs.len(), classes));
    for (k, &(a, b)) in pairs.iter().enumerate() {
        for (half, img) in [a, b].into_iter().enumerate() {
            for r in 0..SIDE {
                for c in 0..SIDE {
                    x[[k, r * 2 * SIDE + half * SIDE + c]] = digits.pixels[[img, r * SIDE + c]];
                }
            }
            t[[k, digits.labels[img]]] = 1.0;
        }
    }
    (x, t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(pixel: u8, label: usize) -> String {
        let mut s = vec![pixel.to_string(); PIXELS];
        s.push(label.to_string());
        s.join(",")
    }

    #[test]
    fn parses_rows_and_labels() {
        let text = format!("{}\n\n{}\n", line(3, 7), line(16, 0));
        let d = parse_digits(&text).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d.labels, vec![7, 0]);
        assert_eq!(d.pixels.shape(), &[2, PIXELS]);
        assert_eq!(d.pixels[[0, 5]], 3.0);
        assert_eq!(d.pixels[[1, 63]], 16.0);
    }

    #[test]
    fn rejects_malformed_lines_naming_them() {
        let short = "1,2,3";
        assert_eq!(
            parse_digits(short).unwrap_err(),
            "line 1: expected 65 comma-separated values, got 3"
        );
        let bad_pixel = format!("{}\n{}", line(0, 1), line(17, 1));
        assert_eq!(
            parse_digits(&bad_pixel).unwrap_err(),
            "line 2, pixel 0: expected an integer 0..=16, got \"17\""
        );
        assert_eq!(
            parse_digits(&line(1, 10)).unwrap_err(),
            "line 1: expected a label 0..=9, got \"10\""
        );
        assert_eq!(parse_digits("\n").unwrap_err(), "no images");
    }

    #[test]
    fn bundled_file_has_1797_images_of_all_ten_digits() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/digits.csv.gz");
        let d = read_digits_gz(&path).unwrap();
        assert_eq!(d.len(), 1797);
        assert!(class_counts(&d.labels, CLASSES).iter().all(|&n| n >= 170));
    }

    #[test]
    fn split_is_stratified_disjoint_and_complete() {
        let labels: Vec<usize> = (0..300)
            .map(|i| if i % 3 == 0 { 0 } else { 1 + i % 2 })
            .collect();
        let mut rng = Rng::new(1);
        let (train, test) = stratified_split(&labels, 3, 0.3, &mut rng);
        let pick = |idx: &[usize]| idx.iter().map(|&i| labels[i]).collect::<Vec<_>>();
        assert_eq!(class_counts(&pick(&test), 3), vec![30, 30, 30]);
        assert_eq!(class_counts(&pick(&train), 3), vec![70, 70, 70]);
        let mut all = [train.clone(), test.clone()].concat();
        all.sort_unstable();
        assert_eq!(all, (0..300).collect::<Vec<_>>());
        // Fixed seed, fixed split.
        assert_eq!(
            stratified_split(&labels, 3, 0.3, &mut Rng::new(1)),
            (train, test)
        );
    }

    #[test]
    fn long_tail_counts_fall_exponentially_100_to_1() {
        let counts = long_tail_counts(100, 100.0, 10);
        assert_eq!(counts, vec![100, 60, 36, 22, 13, 8, 5, 3, 2, 1]);
        assert_eq!(counts[0] / counts[9], 100);
        // Never rounds a class away.
        assert!(long_tail_counts(10, 1000.0, 5).iter().all(|&n| n >= 1));
    }

    #[test]
    fn long_tail_subsample_keeps_the_counts_by_rank() {
        let labels: Vec<usize> = (0..400).map(|i| i % 4).collect();
        let pool: Vec<usize> = (0..400).collect();
        let counts = long_tail_counts(50, 10.0, 4);
        let rank = [2, 0, 3, 1];
        let kept = long_tail_subsample(&pool, &labels, &counts, &rank, &mut Rng::new(4));
        let got = class_counts(&kept.iter().map(|&i| labels[i]).collect::<Vec<_>>(), 4);
        assert_eq!(got, vec![counts[2], counts[0], counts[3], counts[1]]);
        assert!(kept.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn noise_flips_exactly_the_rate_to_other_classes() {
        let labels: Vec<usize> = (0..1000).map(|i| i % 10).collect();
        let noisy = symmetric_noise(&labels, 10, 0.4, &mut Rng::new(9));
        let flipped = labels.iter().zip(&noisy).filter(|(a, b)| a != b).count();
        assert_eq!(flipped, 400);
        assert!(noisy.iter().all(|&y| y < 10));
        // The wrong labels are spread over the other classes.
        let wrong: Vec<usize> = labels
            .iter()
            .zip(&noisy)
            .filter(|(a, b)| a != b)
            .map(|(a, b)| (b + 10 - a) % 10)
            .collect();
        let offsets = class_counts(&wrong, 10);
        assert_eq!(offsets[0], 0);
        assert!(offsets[1..].iter().all(|&n| n > 20), "{offsets:?}");
    }

    #[test]
    fn standardize_uses_train_statistics() {
        let mut train = ndarray::array![[0.0_f32, 5.0], [2.0, 5.0]];
        let mut test = ndarray::array![[1.0_f32, 6.0]];
        let mut other = ndarray::array![[2.0_f32, 5.0]];
        standardize(&mut train, &mut [&mut test, &mut other]);
        assert_eq!(train, ndarray::array![[-1.0, 0.0], [1.0, 0.0]]);
        assert_eq!(test, ndarray::array![[0.0, 1.0]]);
        assert_eq!(other, ndarray::array![[1.0, 0.0]]);
    }

    #[test]
    fn composites_put_two_digits_side_by_side_with_their_label_set() {
        // Image i is filled with the value i; labels 0, 1, 1, 2.
        let digits = Digits {
            pixels: Array2::from_shape_fn((4, PIXELS), |(i, _)| i as f32),
            labels: vec![0, 1, 1, 2],
        };
        let pool = [0, 1, 2, 3];
        let (x, t) = side_by_side(&digits, &pool, 2, 3, &mut Rng::new(5));
        assert_eq!(x.shape(), &[4, 2 * PIXELS]);
        let mut uses = [0usize; 4];
        for (row, set) in x.rows().into_iter().zip(t.rows()) {
            let (left, right) = (row[0] as usize, row[8] as usize);
            // Each pixel row of the wide image: 8 of the left image, 8 of the right.
            for r in 0..8 {
                assert!(
                    row.slice(ndarray::s![16 * r..16 * r + 8])
                        .iter()
                        .all(|&v| v == left as f32)
                );
                assert!(
                    row.slice(ndarray::s![16 * r + 8..16 * r + 16])
                        .iter()
                        .all(|&v| v == right as f32)
                );
            }
            let mut want = vec![0.0_f32; 3];
            want[digits.labels[left]] = 1.0;
            want[digits.labels[right]] = 1.0;
            assert_eq!(set.to_vec(), want);
            uses[left] += 1;
            uses[right] += 1;
        }
        assert_eq!(uses, [2, 2, 2, 2]);
        // Only the pool's images are used.
        let (x, _) = side_by_side(&digits, &[1, 3], 2, 3, &mut Rng::new(5));
        assert!(x.iter().all(|&v| v == 1.0 || v == 3.0));
    }
}
