//! FNV-1a 64-bit hashing: the digest a run records of the dataset it trains on, so that a resume
//! on other images is caught. Fast and stable across platforms; it detects changes, it is not a
//! cryptographic hash.

use super::split::{Dataset, Split, SplitRule};

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// An FNV-1a 64 hasher.
#[derive(Debug, Clone, Copy)]
pub struct Fnv1a64(u64);

impl Default for Fnv1a64 {
    fn default() -> Self {
        Fnv1a64(OFFSET)
    }
}

impl Fnv1a64 {
    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(PRIME);
        }
    }

    pub fn finish(&self) -> u64 {
        self.0
    }
}

/// `fnv1a64:` and 16 hex digits over both splits: their sizes, pixels and labels, so the same
/// images give the same digest whether their files are gzip-compressed or not. IDX datasets
/// hash exactly what earlier versions hashed (sizes, pixels, label bytes), so their recorded
/// digests stay valid; image folders add the channel count, the labels as u32 and the class
/// names.
pub fn dataset_digest(d: &Dataset) -> String {
    let mut h = Fnv1a64::default();
    let idx = d.split_rule == SplitRule::IdxFiles;
    if !idx {
        h.update(b"image-folder");
        h.update(&(d.classes.len() as u64).to_le_bytes());
        for class in &d.classes {
            h.update(&(class.len() as u64).to_le_bytes());
            h.update(class.as_bytes());
        }
    }
    for split in [&d.train, &d.test] {
        add_split(&mut h, split, idx);
    }
    format!("fnv1a64:{:016x}", h.finish())
}

fn add_split(h: &mut Fnv1a64, s: &Split, idx: bool) {
    let im = &s.images;
    if !idx {
        h.update(&(im.channels as u64).to_le_bytes());
    }
    for dim in [im.count, im.rows, im.cols, s.labels.len()] {
        h.update(&(dim as u64).to_le_bytes());
    }
    h.update(&im.pixels);
    for &label in &s.labels {
        if idx {
            // IDX labels are bytes.
            h.update(&[label as u8]);
        } else {
            h.update(&label.to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_published_fnv1a64_values() {
        let hash = |s: &str| {
            let mut h = Fnv1a64::default();
            h.update(s.as_bytes());
            h.finish()
        };
        assert_eq!(hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(hash("foobar"), 0x8594_4171_f739_67e8);
    }

    fn split(pixels: Vec<u8>, labels: Vec<u32>) -> Split {
        Split {
            images: crate::data::Images {
                count: labels.len(),
                channels: 1,
                rows: 1,
                cols: 2,
                pixels,
            },
            labels,
        }
    }

    /// IDX digests are those earlier versions recorded (sizes as u64, pixels, label bytes), so
    /// runs trained before labels became u32 still resume.
    #[test]
    fn idx_digest_is_unchanged() {
        let d = Dataset {
            dir: "x".into(),
            train: split(vec![1, 2, 3, 4], vec![7, 9]),
            test: split(vec![5, 6], vec![3]),
            classes: Vec::new(),
            split_rule: SplitRule::IdxFiles,
            ignored: 0,
            outside_split: 0,
        };
        let mut h = Fnv1a64::default();
        for (count, pixels, labels) in [
            (2u64, &[1u8, 2, 3, 4][..], &[7u8, 9][..]),
            (1, &[5, 6], &[3]),
        ] {
            for dim in [count, 1, 2, count] {
                h.update(&dim.to_le_bytes());
            }
            h.update(pixels);
            h.update(labels);
        }
        assert_eq!(dataset_digest(&d), format!("fnv1a64:{:016x}", h.finish()));
        // The same bytes as an image folder are another dataset.
        let folder = Dataset {
            split_rule: SplitRule::Hash { test_percent: 10 },
            ..d.clone()
        };
        assert_ne!(dataset_digest(&folder), dataset_digest(&d));
    }
}
