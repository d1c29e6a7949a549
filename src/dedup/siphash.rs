//! SipHash-2-4 (Aumasson and Bernstein, 2012), the keyed hash of dedup keys.
//!
//! std's SipHash cannot be given a key, and one small function does not earn a dependency. Checked
//! against the paper's test vector and the reference implementation's vectors (see tests).

/// An incremental SipHash-2-4 hasher with a 128-bit key.
#[derive(Debug, Clone)]
pub(super) struct SipHasher24 {
    v: [u64; 4],
    tail: u64,
    tail_len: usize,
    length: usize,
}

impl SipHasher24 {
    /// A hasher keyed with `key` (little-endian k0, k1).
    pub(super) fn new(key: &[u8; 16]) -> SipHasher24 {
        let k0 = u64::from_le_bytes(key[..8].try_into().expect("8 bytes"));
        let k1 = u64::from_le_bytes(key[8..].try_into().expect("8 bytes"));
        SipHasher24 {
            v: [
                k0 ^ 0x736f6d6570736575,
                k1 ^ 0x646f72616e646f6d,
                k0 ^ 0x6c7967656e657261,
                k1 ^ 0x7465646279746573,
            ],
            tail: 0,
            tail_len: 0,
            length: 0,
        }
    }

    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }

    fn compress(&mut self, m: u64) {
        self.v[3] ^= m;
        Self::round(&mut self.v);
        Self::round(&mut self.v);
        self.v[0] ^= m;
    }

    /// Feeds bytes: whole 8-byte words at a time once the tail left by an earlier write is
    /// full (byte by byte, this was most of the hash's time for ids of tens of bytes).
    pub(super) fn write(&mut self, mut bytes: &[u8]) {
        self.length += bytes.len();
        while self.tail_len > 0 {
            let Some((&b, rest)) = bytes.split_first() else { return };
            self.push_byte(b);
            bytes = rest;
        }
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            self.compress(u64::from_le_bytes(word.try_into().expect("8 bytes")));
        }
        for &b in words.remainder() {
            self.push_byte(b);
        }
    }

    /// Adds one byte to the tail, compressing it once it holds 8.
    fn push_byte(&mut self, b: u8) {
        self.tail |= u64::from(b) << (8 * self.tail_len);
        self.tail_len += 1;
        if self.tail_len == 8 {
            let m = self.tail;
            self.compress(m);
            self.tail = 0;
            self.tail_len = 0;
        }
    }

    /// The 64-bit hash of everything fed so far.
    pub(super) fn finish(&self) -> u64 {
        let mut v = self.v;
        let m = self.tail | ((self.length as u64 & 0xff) << 56);
        v[3] ^= m;
        Self::round(&mut v);
        Self::round(&mut v);
        v[0] ^= m;
        v[2] ^= 0xff;
        for _ in 0..4 {
            Self::round(&mut v);
        }
        v[0] ^ v[1] ^ v[2] ^ v[3]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(key: &[u8; 16], message: &[u8]) -> u64 {
        let mut h = SipHasher24::new(key);
        h.write(message);
        h.finish()
    }

    #[test]
    fn reference_vectors() {
        let key: [u8; 16] = std::array::from_fn(|i| i as u8);
        let message: Vec<u8> = (0..64u8).collect();
        // The paper's example (Appendix A): 15-byte message 00..0e.
        assert_eq!(hash(&key, &message[..15]), 0xa129ca6149be45e5);
        // The reference implementation's vectors for lengths 0, 1, 7, 8 and 63.
        assert_eq!(hash(&key, &message[..0]), 0x726fdb47dd0e0e31);
        assert_eq!(hash(&key, &message[..1]), 0x74f839c593dc67fd);
        assert_eq!(hash(&key, &message[..7]), 0xab0200f58b01d137);
        assert_eq!(hash(&key, &message[..8]), 0x93f5f5799a932462);
        assert_eq!(hash(&key, &message[..63]), 0x958a324ceb064572);
    }

    #[test]
    fn incremental_writes_equal_one_write() {
        let key = [7u8; 16];
        let message: Vec<u8> = (0..100u8).collect();
        for size in 1..=17 {
            let mut split = SipHasher24::new(&key);
            for chunk in message.chunks(size) {
                split.write(chunk);
            }
            assert_eq!(split.finish(), hash(&key, &message), "chunks of {size}");
        }
        // Word-at-a-time against byte-at-a-time, every length through three words.
        for len in 0..=24 {
            let mut bytewise = SipHasher24::new(&key);
            for b in &message[..len] {
                bytewise.write(std::slice::from_ref(b));
            }
            assert_eq!(bytewise.finish(), hash(&key, &message[..len]), "length {len}");
        }
    }
}
