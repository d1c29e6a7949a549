//! Split patterns for the targets that feed a decoder in pieces (`http_chunked`, `http_head`):
//! piece lengths from a seed, mostly short, sometimes long, so that a failing seed replays.

/// Piece lengths from a seed: each at least `shortest` (0 lets a read bring nothing), at most the
/// largest of a table picked by the seed's low bits (`usize::MAX`: everything at once).
pub struct Pieces {
    state: u64,
    shortest: usize,
    largest: usize,
}

impl Pieces {
    pub fn new(seed: u64, shortest: usize) -> Self {
        let largest = [1, 2, 3, 7, 16, 64, 1024, usize::MAX][(seed & 7) as usize].max(shortest);
        Pieces { state: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1, shortest, largest }
    }
}

impl Iterator for Pieces {
    type Item = usize;

    /// xorshift64.
    fn next(&mut self) -> Option<usize> {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        let r = self.state >> 8;
        Some(match self.largest {
            usize::MAX => usize::MAX,
            largest => self.shortest + (r % (largest - self.shortest + 1) as u64) as usize,
        })
    }
}
