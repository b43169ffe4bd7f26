//! Host-side seeded randomness: weight initialisation and the per-epoch shuffles. SplitMix64,
//! so a (seed, purpose) pair always gives the same stream on every machine, which is what makes
//! `--resume` reproduce an uninterrupted run.

/// SplitMix64 (Steele, Lea, Flood 2014).
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// A stream for one purpose of one seed (e.g. the shuffle of epoch 3).
    pub fn derived(seed: u64, purpose: u64, index: u64) -> Self {
        let mut s = SplitMix64(seed ^ 0x6a09_e667_f3bc_c908);
        let a = s.next_u64() ^ purpose.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut t = SplitMix64(a);
        SplitMix64(t.next_u64() ^ index.wrapping_mul(0xbf58_476d_1ce4_e5b9))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }

    /// Uniform integer in `0..n` (n > 0), without modulo bias.
    pub fn below(&mut self, n: u64) -> u64 {
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let v = self.next_u64();
            if v < zone {
                return v % n;
            }
        }
    }

    /// A uniformly random permutation of `0..n` (Fisher–Yates).
    pub fn permutation(&mut self, n: usize) -> Vec<u32> {
        let mut p: Vec<u32> = (0..n as u32).collect();
        for i in (1..n).rev() {
            let j = self.below(i as u64 + 1) as usize;
            p.swap(i, j);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_is_a_permutation_and_seeded() {
        let a = SplitMix64::derived(1, 2, 3).permutation(1000);
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..1000).collect::<Vec<u32>>());
        assert_eq!(a, SplitMix64::derived(1, 2, 3).permutation(1000));
        assert_ne!(a, SplitMix64::derived(1, 2, 4).permutation(1000));
    }

    #[test]
    fn uniform_stays_in_range() {
        let mut r = SplitMix64::new(9);
        for _ in 0..10_000 {
            let v = r.uniform(-0.5, 0.25);
            assert!((-0.5..0.25).contains(&v));
        }
    }
}
