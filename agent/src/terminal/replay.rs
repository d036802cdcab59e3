//! A terminal's replay buffer: the last `capacity` bytes of its output,
//! addressed by absolute offsets since the PTY started.

use std::collections::VecDeque;

#[derive(Debug)]
pub struct Replay {
    buf: VecDeque<u8>,
    capacity: usize,
    /// Offset of `buf[0]`.
    start: u64,
}

impl Replay {
    pub fn new(capacity: usize) -> Self {
        Self {
            buf: VecDeque::with_capacity(capacity),
            capacity: capacity.max(1),
            start: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The oldest offset still held.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// The total output so far.
    pub fn end(&self) -> u64 {
        self.start + self.buf.len() as u64
    }

    /// Appends, forgetting the oldest bytes beyond the capacity.
    pub fn push(&mut self, data: &[u8]) {
        let skipped = data.len().saturating_sub(self.capacity);
        let data = &data[skipped..];
        let overflow = (self.buf.len() + data.len()).saturating_sub(self.capacity);
        self.buf.drain(..overflow);
        self.start += (overflow + skipped) as u64;
        self.buf.extend(data);
    }

    /// Up to `max` bytes from offset `from`, which is clamped to what is
    /// held; returns the offset the bytes start at.
    pub fn read(&self, from: u64, max: usize) -> (u64, Vec<u8>) {
        let from = from.clamp(self.start, self.end());
        let skip = (from - self.start) as usize;
        let (a, b) = self.buf.as_slices();
        let mut data = Vec::with_capacity(max.min(self.buf.len() - skip));
        if skip < a.len() {
            data.extend_from_slice(&a[skip..a.len().min(skip + max)]);
        }
        let b_skip = skip.saturating_sub(a.len());
        let want = max - data.len();
        if want > 0 && b_skip < b.len() {
            data.extend_from_slice(&b[b_skip..b.len().min(b_skip + want)]);
        }
        (from, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_tail_with_absolute_offsets() {
        let mut r = Replay::new(8);
        r.push(b"hello ");
        assert_eq!((r.start(), r.end()), (0, 6));
        r.push(b"world");
        assert_eq!((r.start(), r.end()), (3, 11));
        assert_eq!(r.read(0, 100), (3, b"lo world".to_vec()));
        assert_eq!(r.read(6, 3), (6, b"wor".to_vec()));
        assert_eq!(r.read(99, 3), (11, Vec::new()));
        r.push(b"0123456789abc");
        assert_eq!((r.start(), r.end()), (16, 24));
        assert_eq!(r.read(0, 100), (16, b"56789abc".to_vec()));
        // Reads that straddle the ring's wrap-around.
        let mut r = Replay::new(8);
        r.push(b"abcdef");
        r.push(b"ghij");
        for from in 2..=10 {
            for max in 0..10 {
                let want: Vec<u8> = b"cdefghij"[(from - 2) as usize..]
                    .iter()
                    .take(max)
                    .copied()
                    .collect();
                assert_eq!(r.read(from, max), (from, want), "{from} {max}");
            }
        }
    }
}
