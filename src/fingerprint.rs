//! FNV-1a 64-bit hashing: the digest a run records of the dataset it trains on, so that a resume
//! on other images is caught. Fast and stable across platforms; it detects changes, it is not a
//! cryptographic hash.

use crate::data::{Dataset, Split};

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
/// images give the same digest whether their files are gzip-compressed or not.
pub fn dataset_digest(d: &Dataset) -> String {
    let mut h = Fnv1a64::default();
    for split in [&d.train, &d.test] {
        add_split(&mut h, split);
    }
    format!("fnv1a64:{:016x}", h.finish())
}

fn add_split(h: &mut Fnv1a64, s: &Split) {
    let im = &s.images;
    for dim in [im.count, im.rows, im.cols, s.labels.len()] {
        h.update(&(dim as u64).to_le_bytes());
    }
    h.update(&im.pixels);
    h.update(&s.labels);
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
}
